"""Our model in sherpa-onnx's own runtime, compared with our engine
(``streamasr check-sherpa``): its Python ``OnlineRecognizer`` and its C++ WebSocket
server (``sherpa-onnx-online-websocket-server`` from the ``sherpa-onnx-bin`` package).

What is compared, per utterance, at one (chunk, left context):

* sherpa-onnx: all samples, 0.8 s of zeros (its server's ``--end-tail-padding``), input
  finished, decoded while ready (only whole windows: the tail padding stands in for a
  short last chunk);
* our engine (exact front end, PyTorch fixed-shape step) on the same waveform, with
  sherpa-onnx's limit of 10 symbols per frame (ours defaults to 6: the differences that
  limit makes are counted separately);
* where they differ, our engine once more on the tail-padded waveform, its tokens cut
  at the last frame sherpa-onnx decoded: equal tokens there show that the difference is
  the end of the stream (zeros and whole windows vs. our short last chunk), not the
  model or the features.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch
from speechbrain.dataio.dataio import read_audio
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig
from speechbrain.utils.metric_stats import ErrorRateStats

from streamasr.data.manifest import read_manifest, resolve_path
from streamasr.dct import with_right_frames
from streamasr.errors import ConfigError, ModelLoadError
from streamasr.export.onnx import cell_name, checkpoint_fingerprint
from streamasr.export.sherpa import (
    SHERPA_MAX_SYMBOLS_PER_FRAME,
    SHERPA_TAIL_PADDING_S,
    check_sherpa_folder,
    export_sherpa_onnx,
    sherpa_decode,
    sherpa_recognizer,
    write_sherpa_readme,
)
from streamasr.model import AsrModel
from streamasr.streaming.recognizer import StreamingRecognizer
from streamasr.units import SAMPLE_RATE

SERVER_BINARY = "sherpa-onnx-online-websocket-server"


def cached_sherpa_folder(model: AsrModel, chunk_ms: float, left_chunks: int, force: bool = False,
                         right_ms: float = 0) -> Path:
    """``<model>/sherpa-onnx/<cell>``, exported when missing or from other weights."""
    folder = Path(model.source) / "sherpa-onnx" / cell_name(chunk_ms, left_chunks, right_ms=right_ms)
    meta_file = folder / "export.json"
    if meta_file.is_file():
        with contextlib.suppress(json.JSONDecodeError):
            if json.loads(meta_file.read_text(encoding="utf-8")).get("checkpoint") == checkpoint_fingerprint(model):
                return folder
    write_sherpa_readme(export_sherpa_onnx(model, folder, chunk_ms, left_chunks, force=force, overwrite=True,
                                           right_ms=right_ms))
    return folder


@dataclasses.dataclass
class Utterance:
    id: str
    words: str
    wave: torch.Tensor


def load_manifest(manifest: str | os.PathLike, limit: Optional[int] = None) -> list[Utterance]:
    rows = read_manifest(manifest)[:limit] if limit else read_manifest(manifest)
    root = Path(manifest).parent
    return [Utterance(row["ID"], row["wrd"], read_audio(resolve_path(row["wav"], str(root))).float()) for row in rows]


def sherpa_frames_decoded(num_samples: int, chunk_frames: int, tail_padding_s: float = SHERPA_TAIL_PADDING_S,
                          right_frames: int = 0, subsampling: int = 4) -> int:
    """Encoder frames sherpa-onnx decodes for a stream of ``num_samples`` (+ tail
    padding): whole windows of ``subsampling x (C + R)`` feature frames every
    ``subsampling x C``, while one more frame is ready."""
    samples = num_samples + int(tail_padding_s * SAMPLE_RATE)
    feature_frames = (samples + 80) // 160
    window, shift = subsampling * (chunk_frames + right_frames), subsampling * chunk_frames
    chunks = 0
    while chunks * shift + window < feature_frames:
        chunks += 1
    return chunks * chunk_frames


def engine_tokens(model: AsrModel, config: DynChunkTrainConfig, wave: torch.Tensor, max_symbols: int
                  ) -> list[tuple[str, int]]:
    """Our engine's ``(piece, frame)`` tokens for one waveform, with ``max_symbols``
    symbols per frame at most."""
    saved = model.search.max_symbols_per_step
    model.search.max_symbols_per_step = max_symbols - 1
    try:
        _, outputs = StreamingRecognizer(model, config).transcribe(wave)
    finally:
        model.search.max_symbols_per_step = saved
    # sherpa-onnx reports SentencePiece's word marker as a space
    return [(event.piece.replace("\u2581", " "), event.frame) for output in outputs for event in output.tokens]


def _text(pieces: list[str]) -> str:
    return " ".join("".join(pieces).split())


def _wer(references: list[str], hypotheses: list[str]) -> float:
    stats = ErrorRateStats()
    stats.append(list(range(len(references))), [h.split() for h in hypotheses], [r.split() for r in references])
    return float(stats.summarize("error_rate"))


def compare_with_sherpa(model: AsrModel, utterances: list[Utterance], chunk_ms: float = 640, left_chunks: int = 4,
                        folder: Optional[str | os.PathLike] = None, threads: int = 1, force: bool = False,
                        right_ms: float = 0) -> dict:
    """Decode ``utterances`` with sherpa-onnx and with our engine (module docstring);
    returns WERs, agreement and every difference with its explanation. ``right_ms``:
    look-ahead (``streamasr.dct``)."""
    chunk_frames = model.geometry.frames_from_ms(chunk_ms)
    right = model.geometry.right_frames_from_ms(right_ms)
    config = with_right_frames(DynChunkTrainConfig(chunk_frames, left_chunks), right)
    folder = Path(folder) if folder else cached_sherpa_folder(model, chunk_ms, left_chunks, force=force,
                                                             right_ms=right_ms)
    recognizer = sherpa_recognizer(folder, threads=threads)
    waves = [u.wave.numpy() for u in utterances]
    started = time.perf_counter()
    theirs = sherpa_decode(recognizer, waves)
    sherpa_seconds = time.perf_counter() - started
    tail = torch.zeros(int(SHERPA_TAIL_PADDING_S * SAMPLE_RATE))
    rows, default_differs = [], 0
    for utterance, result in zip(utterances, theirs):
        ours = engine_tokens(model, config, utterance.wave, SHERPA_MAX_SYMBOLS_PER_FRAME)
        limit = model.search.max_symbols_per_step + 1
        per_frame = collections.Counter(frame for _, frame in ours)
        # the default limit decides differently only where a frame emitted more symbols
        default = ours if max(per_frame.values(), default=0) <= limit else \
            engine_tokens(model, config, utterance.wave, limit)
        default_differs += [p for p, _ in default] != [p for p, _ in ours]
        row = {"id": utterance.id, "reference": utterance.words, "sherpa": result["text"],
               "ours": _text([p for p, _ in ours]), "ours_default_limit": _text([p for p, _ in default])}
        row["agree"] = row["sherpa"] == row["ours"]
        if not row["agree"]:
            decoded = sherpa_frames_decoded(utterance.wave.shape[0], chunk_frames, right_frames=right,
                                            subsampling=model.geometry.subsampling)
            padded = engine_tokens(model, config, torch.cat([utterance.wave, tail]), SHERPA_MAX_SYMBOLS_PER_FRAME)
            cut = [p for p, frame in padded if frame < decoded]
            audio_frames = model.geometry.num_encoder_frames(utterance.wave.shape[0])
            first = next((i for i, (a, b) in enumerate(zip(ours, result["tokens"])) if a[0] != b),
                         min(len(ours), len(result["tokens"])))
            frame = ours[first][1] if first < len(ours) else audio_frames
            row.update({
                "same_as_tail_padded_engine": cut == result["tokens"],
                "first_difference_frame": frame,
                "frames": audio_frames,
                "last_chunk_start": (audio_frames - 1) // chunk_frames * chunk_frames,
            })
        rows.append(row)
    differing = [r for r in rows if not r["agree"]]
    references = [u.words for u in utterances]
    return {
        "folder": str(folder),
        "chunk_ms": chunk_ms,
        "left_chunks": left_chunks,
        "right_ms": model.geometry.chunk_ms(right),
        "utterances": len(rows),
        "wer_sherpa": _wer(references, [r["sherpa"] for r in rows]),
        "wer_ours": _wer(references, [r["ours"] for r in rows]),
        "wer_ours_default_limit": _wer(references, [r["ours_default_limit"] for r in rows]),
        "agreement": 1 - len(differing) / max(1, len(rows)),
        "differing": len(differing),
        "explained_by_tail": sum(r["same_as_tail_padded_engine"] for r in differing),
        "in_last_chunk": sum(r["first_difference_frame"] >= r["last_chunk_start"] for r in differing),
        "symbol_limit_changes": int(default_differs),
        "sherpa_seconds": sherpa_seconds,
        "rows": rows,
    }


# ---------------------------------------------------------------------- the C++ server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sherpa_binary(name: str = SERVER_BINARY) -> str:
    """A sherpa-onnx-bin executable: on PATH or beside this Python (a virtual
    environment's bin/ need not be on PATH)."""
    found = shutil.which(name)
    if not found:
        candidate = Path(sys.executable).parent / name
        found = str(candidate) if candidate.is_file() else None
    if not found:
        raise ModelLoadError(f"{name} not found: pip install sherpa-onnx-bin")
    return found


@contextlib.contextmanager
def sherpa_server(folder: str | os.PathLike, port: Optional[int] = None, work_threads: int = 1,
                  max_batch: int = 32, model_threads: int = 1, log: Optional[str | os.PathLike] = None,
                  startup_timeout: float = 60.0, endpoint: bool = False) -> Iterator[int]:
    """Run sherpa-onnx's C++ streaming WebSocket server on ``folder``; yields its port;
    stopped (SIGTERM, then SIGKILL after 5 s) on exit. ``endpoint``: its endpointing
    (on by default in the server; off here, so that a stream is one segment, as the
    Python API decodes it without endpointing)."""
    folder = Path(folder)
    check_sherpa_folder(folder)
    port = port or free_port()
    command = [sherpa_binary(), f"--port={port}", f"--num-work-threads={work_threads}", "--num-io-threads=1",
               f"--max-batch-size={max_batch}", f"--num-threads={model_threads}", "--loop-interval-ms=10",
               f"--enable-endpoint={'true' if endpoint else 'false'}",
               f"--tokens={folder / 'tokens.txt'}", f"--encoder={folder / 'encoder.onnx'}",
               f"--decoder={folder / 'decoder.onnx'}", f"--joiner={folder / 'joiner.onnx'}"]
    command.append(f"--log-file={log or os.devnull}")  # its default is ./log.txt in the working directory
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise ModelLoadError(f"{SERVER_BINARY} exited with {process.returncode}: "
                                     f"{process.stderr.read().decode(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                raise ModelLoadError(f"{SERVER_BINARY} did not listen on port {port} within {startup_timeout:g} s")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


async def stream_to_server(port: int, wave: np.ndarray, seconds_per_message: float = 0.5,
                           pace: float = 0.0, chunk_seconds: Optional[float] = None) -> dict:
    """One stream through sherpa-onnx's server protocol: float32 samples as binary
    messages of ``seconds_per_message``, ``pace`` seconds apart (0: as fast as the socket
    takes them; its own client sends 0.5 s every 0.1 s), then ``Done``; reads results
    until ``Done!``. Returns the last result and timing.

    With ``chunk_seconds``, ``chunk_latencies`` lists, for every result that brought new
    tokens, the time from sending the message that held the last sample of its newest
    token's chunk to receiving the result (what a user waits for a word, beyond the
    chunk itself)."""
    import websockets

    size = int(seconds_per_message * SAMPLE_RATE)
    last, messages, segments = {}, 0, {}
    sent_at: list[tuple[int, float]] = []  # (samples sent so far, when)
    latencies: list[float] = []
    token_count = 0
    async with websockets.connect(f"ws://127.0.0.1:{port}", max_size=None) as socket_:
        async def receive() -> None:
            # sherpa-onnx's server posts "Done!" and the results on two different io
            # contexts, so the final result (is_eof) can arrive after "Done!": read on
            # until it has come (or nothing more comes for 2 s)
            nonlocal last, messages, token_count
            done = eof = False
            while not (done and eof):
                try:
                    message = await (asyncio.wait_for(socket_.recv(), 2.0) if done else socket_.recv())
                except (asyncio.TimeoutError, websockets.ConnectionClosed):
                    return
                if message == "Done!":
                    done = True
                    continue
                arrived = time.perf_counter()
                last = json.loads(message)
                segments[int(last.get("segment", 0))] = last.get("text", "").strip()
                stamps = last.get("timestamps", [])
                if chunk_seconds and len(stamps) > token_count and not last.get("is_eof"):
                    # the newest token's chunk ends at the next chunk boundary after it
                    end = (int(stamps[-1] / chunk_seconds + 1e-6) + 1) * chunk_seconds * SAMPLE_RATE
                    when = next((t for samples, t in sent_at if samples >= min(end, len(wave))), None)
                    if when is not None:
                        latencies.append(arrived - when)
                token_count = 0 if last.get("is_final") else len(stamps)
                eof = eof or bool(last.get("is_eof"))
                messages += 1

        reader = asyncio.create_task(receive())
        started = time.perf_counter()
        for begin in range(0, len(wave), size):
            await socket_.send(np.asarray(wave[begin : begin + size], dtype=np.float32).tobytes())
            sent_at.append((min(len(wave), begin + size), time.perf_counter()))
            if pace:
                await asyncio.sleep(pace)
        sent = time.perf_counter()
        await socket_.send("Done")
        await reader
        done = time.perf_counter()
    # with endpointing a stream has several segments, each result carrying its own text
    text = " ".join(segments[key] for key in sorted(segments) if segments[key])
    return {"text": text, "segments": len(segments), "tokens": last.get("tokens", []), "messages": messages,
            "send_seconds": sent - started, "final_latency": done - sent, "chunk_latencies": latencies}


def server_transcripts(port: int, waves: list[np.ndarray], concurrency: int = 8) -> list[dict]:
    """Every wave through the server, ``concurrency`` streams at a time."""
    async def run() -> list[dict]:
        limit = asyncio.Semaphore(concurrency)

        async def one(wave: np.ndarray) -> dict:
            async with limit:
                return await stream_to_server(port, wave, pace=0.1)

        return await asyncio.gather(*(one(w) for w in waves))

    return asyncio.run(run())


def load_test(port: int, waves: list[np.ndarray], streams: int, seconds: float, message_seconds: float = 0.32,
              chunk_seconds: Optional[float] = None) -> dict:
    """``streams`` concurrent clients, each sending ``seconds`` of audio (the waves one
    after another) in real time, ``message_seconds`` per message; reports how late the
    final result of each comes after its ``Done`` (a server that keeps up answers within
    about a chunk plus the tail padding's compute; one that falls behind accumulates
    a backlog of the whole run)."""
    audio = np.concatenate(waves)
    need = int(seconds * SAMPLE_RATE)
    audio = np.tile(audio, need // len(audio) + 1)[:need]

    async def run() -> list[dict]:
        async def one(index: int) -> dict:
            await asyncio.sleep(index * message_seconds / max(1, streams))  # spread the start
            offset = (index * 7919 * 160) % len(audio)
            wave = np.roll(audio, -offset)
            return await stream_to_server(port, wave, seconds_per_message=message_seconds, pace=message_seconds,
                                          chunk_seconds=chunk_seconds)

        return await asyncio.gather(*(one(i) for i in range(streams)))

    results = asyncio.run(run())
    latencies = np.array([r["final_latency"] for r in results])
    lags = np.array([r["send_seconds"] - seconds for r in results])
    chunk = np.array([value for r in results for value in r["chunk_latencies"]] or [np.nan])
    return {"streams": streams, "seconds": seconds, "final_latency_mean": float(latencies.mean()),
            "chunk_latency_p50": float(np.percentile(chunk, 50)), "chunk_latency_p95": float(np.percentile(chunk, 95)),
            "chunk_latency_p99": float(np.percentile(chunk, 99)), "chunk_latency_count": int(np.isfinite(chunk).sum()),
            "final_latency_p95": float(np.percentile(latencies, 95)), "final_latency_max": float(latencies.max()),
            "client_send_lag_max": float(lags.max())}


def comparison_table(results: list[dict]) -> str:
    """Markdown: one row per compared (chunk, left context)."""
    lines = ["| chunk | left | utterances | WER ours | WER sherpa-onnx | relative | same transcript | differing | "
             "explained by tail padding | in the last chunk | ours 6 vs 10 symbols/frame differ | C++ server = "
             "Python API |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        relative = (r["wer_sherpa"] - r["wer_ours"]) / r["wer_ours"] * 100 if r["wer_ours"] else 0.0
        server = f"{r['server']['equal']}/{r['server']['total']}" if r.get("server") else "not run"
        right = f" + {r['right_ms']:g} ms look-ahead" if r.get("right_ms") else ""
        lines.append(f"| {r['chunk_ms']:g} ms{right} | {r['left_chunks']} | {r['utterances']} | {r['wer_ours']:.2f} | "
                     f"{r['wer_sherpa']:.2f} | {relative:+.1f} % | {100 * r['agreement']:.1f} % | {r['differing']} | "
                     f"{r['explained_by_tail']} | {r['in_last_chunk']} | {r['symbol_limit_changes']} | {server} |")
    return "\n".join(lines) + "\n"


def load_table(results: list[dict], chunk_ms: float, max_latency: float) -> str:
    lines = [f"| streams | audio per stream | final result after `Done`: mean | p95 | max | keeps up (p95 <= "
             f"{max_latency:g} s) |", "|---|---|---|---|---|---|"]
    for r in results:
        keeps = "yes" if r["final_latency_p95"] <= max_latency else "no"
        lines.append(f"| {r['streams']} | {r['seconds']:g} s | {r['final_latency_mean']:.2f} s | "
                     f"{r['final_latency_p95']:.2f} s | {r['final_latency_max']:.2f} s | {keeps} |")
    return "\n".join(lines) + "\n"


def check_server(folder: str | os.PathLike, waves: list[np.ndarray], expected: list[str]) -> dict:
    """Transcripts from the C++ server against ``expected`` (the Python API's)."""
    if len(waves) != len(expected):
        raise ConfigError("check_server: one expected transcript per wave")
    with sherpa_server(folder) as port:
        results = server_transcripts(port, waves)
    texts = [r["text"] for r in results]
    return {"equal": sum(a == b for a, b in zip(texts, expected)), "total": len(texts), "texts": texts}


__all__ = ["cached_sherpa_folder", "check_server", "compare_with_sherpa", "comparison_table", "load_manifest",
           "load_table", "load_test",
           "server_transcripts", "sherpa_binary", "sherpa_frames_decoded", "sherpa_server", "stream_to_server"]
