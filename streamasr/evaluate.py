"""WER against chunk size and left context, with latency and compute.

Owns the evaluation sweep behind ``streamasr evaluate``: for every (chunk size, left
context) cell, greedy WER/CER two ways, (a) masked simulation (whole utterances,
batched, chunk masks in the encoder) and (b) true streaming (audio fed chunk by chunk
through ``StreamingRecognizer``), the number of utterances whose hypotheses differ,
algorithmic latency, measured compute per chunk, real-time factor and token emission
latencies; then ``results.json``, ``results.csv``, ``results.md`` and two PNG plots.

Latency model (one stream, real-time input): chunk ``i`` can start once the audio it
needs (its samples + the front end's look-ahead) has arrived and chunk ``i-1`` is done;
its tokens are emitted when its compute finishes. A token's latency is emission time
minus the time at which the audio of its encoder frame had been fed.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

RESULT_FILES = ("results.json", "results.csv", "results.md", "wer_vs_chunk.png", "wer_vs_latency.png")
DEFAULT_CHUNK_MS = (160, 320, 640, 960, 1280)
DEFAULT_LEFT_CHUNKS = (2, 4, None)


@dataclasses.dataclass
class CellResult:
    """One grid cell. ``chunk_frames`` None = full context (masked only)."""

    chunk_frames: Optional[int]
    chunk_ms: Optional[float]
    left_chunks: Optional[int]  # None = unlimited
    utterances: int
    masked_wer: float
    masked_cer: float
    streaming_wer: Optional[float] = None
    streaming_cer: Optional[float] = None
    differing_hypotheses: Optional[int] = None
    algorithmic_latency_ms: Optional[float] = None
    chunk_compute_ms_median: Optional[float] = None
    chunk_compute_ms_p95: Optional[float] = None
    real_time_factor: Optional[float] = None
    first_token_latency_ms: Optional[float] = None
    final_token_latency_ms: Optional[float] = None
    mean_token_latency_ms: Optional[float] = None
    threads: int = 1

    @property
    def left_label(self) -> str:
        if self.chunk_frames is None:
            return "full"
        return "unlimited" if self.left_chunks is None else str(self.left_chunks)


@dataclasses.dataclass
class Utterance:
    utt_id: str
    words: str
    wav: torch.Tensor  # [samples] 16 kHz


def parse_grid(
    chunk_values: Sequence[str], unit: str, left_values: Sequence[str], frame_ms: float
) -> tuple[list[int], list[Optional[int]]]:
    """Validate the grid; returns chunk sizes in encoder frames and left contexts in
    chunks (None = unlimited). Raises ValueError naming the bad value."""
    chunks = []
    for value in chunk_values:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"chunk size {value!r} is not a number") from None
        if unit == "ms":
            frames = number / frame_ms
            if number <= 0 or abs(frames - round(frames)) > 1e-6:
                raise ValueError(
                    f"chunk size {value} ms is not a positive multiple of the encoder frame ({frame_ms:g} ms)"
                )
            chunks.append(int(round(frames)))
        else:
            if number <= 0 or number != int(number):
                raise ValueError(f"chunk size {value} frames is not a positive whole number")
            chunks.append(int(number))
    lefts: list[Optional[int]] = []
    for value in left_values:
        if str(value).lower() in ("unlimited", "none", "inf", "-1"):
            lefts.append(None)
            continue
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"left context {value!r} is not a whole number of chunks or 'unlimited'") from None
        if number < 0:
            raise ValueError(f"left context {value} is negative; expected >= 0 chunks or 'unlimited'")
        lefts.append(number)
    if not chunks:
        raise ValueError("no chunk size given")
    return chunks, lefts or [None]


def load_utterances(manifest: str | os.PathLike, data_root: Optional[str], limit: Optional[int]) -> list[Utterance]:
    """Read and validate a test manifest (missing/bad audio is an error before work)."""
    from speechbrain.dataio.dataio import read_audio

    from streamasr.data.manifest import read_manifest, resolve_path, validate_manifest

    if data_root is None:
        data_root = str(Path(manifest).resolve().parent)
    validate_manifest(manifest, data_root=data_root)
    rows = read_manifest(manifest)
    rows.sort(key=lambda row: float(row["duration"]))
    if limit:
        rows = rows[:limit]
    return [
        Utterance(row["ID"], row["wrd"], read_audio(resolve_path(row["wav"], data_root)).float())
        for row in rows
    ]


def check_output(folder: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse (before any work) a folder that already holds results, unless overwrite."""
    folder = Path(folder)
    existing = [name for name in RESULT_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{folder} already holds results ({', '.join(existing)}); pass --overwrite or another folder"
        )
    return folder


def _error_rates(ids, hyps: list[str], refs: list[str]) -> tuple[float, float]:
    from speechbrain.utils.metric_stats import ErrorRateStats

    wer, cer = ErrorRateStats(), ErrorRateStats(split_tokens=True)
    predicted = [h.split() for h in hyps]
    targets = [r.split() for r in refs]
    wer.append(ids, predicted, targets)
    cer.append(ids, predicted, targets)
    return wer.summarize("error_rate"), cer.summarize("error_rate")


def masked_hypotheses(model, utterances: list[Utterance], config, batch_size: int = 1) -> list[list[int]]:
    """Masked simulation, ``batch_size`` utterances per encoder call. The default is 1:
    in SpeechBrain 1.1.2's Conformer the convolution module sees the padded frames of
    a batch (it masks them only after the convolution), so a padded utterance's last
    frames change; on the demo model, batches of 16 changed the hypothesis of ~5% of
    test utterances (always at their end) compared with decoding each alone."""
    hyps = []
    for begin in range(0, len(utterances), batch_size):
        batch = utterances[begin : begin + batch_size]
        hyps.extend(h.tokens for h in model.transcribe_masked([u.wav for u in batch], config))
    return hyps


def streaming_pass(model, utterances: list[Utterance], config: DynChunkTrainConfig,
                   frontend: str = "exact") -> dict:
    """True streaming over every utterance; returns hypotheses and timing statistics.
    ``frontend``: ``exact`` (ours) or ``stock`` (what SpeechBrain's StreamingASR does)."""
    from streamasr.streaming import StreamingRecognizer

    recognizer = StreamingRecognizer(model, config, frontend)
    geometry = model.geometry
    rate = geometry.sample_rate
    hyps, chunk_times, first, final, every = [], [], [], [], []
    compute_total, audio_total = 0.0, 0.0
    for utt in utterances:
        state, outputs = recognizer.transcribe(utt.wav)
        hyps.append(state.tokens[0])
        samples = utt.wav.shape[-1]
        audio_total += samples / rate
        clock = 0.0
        latencies = []
        for output in outputs:
            if frontend == "stock":  # a chunk runs when its fixed-size block arrived
                ready = min(samples, (output.chunk_index + 1) * recognizer.chunk_samples)
            else:
                ready = samples if output.final else min(samples, model.front_end.samples_needed(output.end_frame))
            clock = max(clock, ready / rate) + output.compute_seconds
            chunk_times.append(output.compute_seconds)
            compute_total += output.compute_seconds
            for event in output.tokens[0]:
                fed = min(samples, event.start_ms * rate / 1000 + geometry.frame_samples) / rate
                latencies.append(clock - fed)
        if latencies:
            first.append(latencies[0])
            final.append(latencies[-1])
            every.extend(latencies)
    chunk_times.sort()

    def ms(values):
        return 1000 * statistics.fmean(values) if values else None

    return {
        "hyps": hyps,
        "chunk_compute_ms_median": 1000 * statistics.median(chunk_times),
        "chunk_compute_ms_p95": 1000 * chunk_times[min(len(chunk_times) - 1, math.ceil(0.95 * len(chunk_times)) - 1)],
        "real_time_factor": compute_total / audio_total,
        "first_token_latency_ms": ms(first),
        "final_token_latency_ms": ms(final),
        "mean_token_latency_ms": ms(every),
    }


def evaluate_cell(
    model, utterances: list[Utterance], chunk: Optional[int], left: Optional[int], threads: int, streaming: bool,
    frontend: str = "exact",
) -> CellResult:
    """One grid cell (``chunk`` None = full context, masked only)."""
    torch.set_num_threads(threads)
    ids = [u.utt_id for u in utterances]
    refs = [u.words for u in utterances]
    config = None if chunk is None else DynChunkTrainConfig(chunk, left)
    masked_text = [model.decode_tokens(h) for h in masked_hypotheses(model, utterances, config)]
    wer, cer = _error_rates(ids, masked_text, refs)
    cell = CellResult(
        chunk_frames=chunk,
        chunk_ms=None if chunk is None else model.geometry.chunk_ms(chunk),
        left_chunks=left,
        utterances=len(utterances),
        masked_wer=wer,
        masked_cer=cer,
        threads=threads,
    )
    if chunk is not None and streaming:
        stats = streaming_pass(model, utterances, config, frontend)
        stream_text = [model.decode_tokens(h) for h in stats.pop("hyps")]
        cell.streaming_wer, cell.streaming_cer = _error_rates(ids, stream_text, refs)
        cell.differing_hypotheses = sum(a != b for a, b in zip(masked_text, stream_text))
        cell.algorithmic_latency_ms = (
            model.geometry.chunk_ms(chunk)
            + 1000 * model.geometry.lookahead_samples / model.geometry.sample_rate
        )
        for key, value in stats.items():
            setattr(cell, key, value)
    return cell


_WORKER: dict = {}


def _worker_init(model_path: str, device: str, manifest: str, data_root, limit, threads: int) -> None:
    from streamasr.model import load_model

    torch.set_num_threads(threads)
    _WORKER["model"] = load_model(model_path, device)
    _WORKER["utterances"] = load_utterances(manifest, data_root, limit)


def _worker_cell(args) -> CellResult:
    chunk, left, threads, streaming, frontend = args
    return evaluate_cell(_WORKER["model"], _WORKER["utterances"], chunk, left, threads, streaming, frontend)


def grid_cells(chunk_frames: Sequence[int], left_chunks: Sequence[Optional[int]]):
    """Full context first, then every (chunk, left) pair, left-major."""
    return [(None, None)] + [(c, l) for l in left_chunks for c in chunk_frames]


def run_sweep(
    model,
    utterances: list[Utterance],
    chunk_frames: Sequence[int],
    left_chunks: Sequence[Optional[int]],
    threads: int = 1,
    streaming: bool = True,
    progress: bool = True,
    frontend: str = "exact",
) -> list[CellResult]:
    """Full context (masked) plus every (chunk, left) cell, masked and streaming, in
    this process."""
    from tqdm import tqdm

    cells = grid_cells(chunk_frames, left_chunks)
    return [
        evaluate_cell(model, utterances, chunk, left, threads, streaming, frontend)
        for chunk, left in tqdm(cells, desc="grid", unit="cell", disable=not progress)
    ]


def run_sweep_parallel(
    worker_args: tuple,
    chunk_frames: Sequence[int],
    left_chunks: Sequence[Optional[int]],
    jobs: int,
    threads: int = 1,
    streaming: bool = True,
    progress: bool = True,
    frontend: str = "exact",
) -> list[CellResult]:
    """The same grid spread over ``jobs`` processes (one stream each, ``threads``
    threads each, so the measured compute stays that of a single stream)."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    cells = grid_cells(chunk_frames, left_chunks)
    tasks = [(chunk, left, threads, streaming, frontend) for chunk, left in cells]
    with ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init, initargs=(*worker_args, threads)) as pool:
        return list(tqdm(pool.map(_worker_cell, tasks), total=len(tasks), desc="grid", unit="cell", disable=not progress))


# ----------------------------------------------------------------------------- output
def markdown_table(results: list[CellResult]) -> str:
    """Rows: left context (chunks); columns: chunk size (ms); cells: streaming WER
    (masked WER when streaming was not run); full-context WER in its own column."""
    full = next((r for r in results if r.chunk_frames is None), None)
    chunked = [r for r in results if r.chunk_frames is not None]
    sizes = sorted({r.chunk_ms for r in chunked})
    lefts = []
    for r in chunked:
        if r.left_label not in lefts:
            lefts.append(r.left_label)
    header = "| left context (chunks) | " + " | ".join(f"{s:g} ms" for s in sizes) + " | full context |"
    lines = [header, "|" + "---|" * (len(sizes) + 2)]
    for left in lefts:
        cells = []
        for size in sizes:
            match = [r for r in chunked if r.left_label == left and r.chunk_ms == size]
            if match:
                r = match[0]
                value = r.streaming_wer if r.streaming_wer is not None else r.masked_wer
                cells.append(f"{value:.2f}")
            else:
                cells.append("")
        full_cell = f"{full.masked_wer:.2f}" if full else ""
        lines.append(f"| {left} | " + " | ".join(cells) + f" | {full_cell} |")
    return "\n".join(lines)


def write_results(results: list[CellResult], folder: Path, meta: dict) -> None:
    rows = [dataclasses.asdict(r) | {"left_context": r.left_label} for r in results]
    (folder / "results.json").write_text(json.dumps({"meta": meta, "cells": rows}, indent=2) + "\n")
    with open(folder / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = [
        "# WER (%) against chunk size and left context\n",
        f"Model: `{meta.get('model')}`; test set: `{meta.get('manifest')}` ({results[0].utterances} utterances); "
        f"greedy decoding; cells are true-streaming WER, full context is the whole-utterance WER.\n",
        markdown_table(results),
        "\n\n## Every cell\n",
        "| chunk ms | left | masked WER | streaming WER | differing hyps | algorithmic latency ms | compute/chunk ms (median / p95) | RTF | first / final token latency ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.chunk_frames is None:
            text.append(f"| full | - | {r.masked_wer:.2f} | - | - | - | - | - | - |")
            continue
        stream = f"{r.streaming_wer:.2f}" if r.streaming_wer is not None else "-"
        timing = (
            f"{r.algorithmic_latency_ms:.1f} | {r.chunk_compute_ms_median:.1f} / {r.chunk_compute_ms_p95:.1f} | "
            f"{r.real_time_factor:.3f} | {_fmt(r.first_token_latency_ms)} / {_fmt(r.final_token_latency_ms)}"
            if r.streaming_wer is not None
            else "- | - | - | -"
        )
        differing = r.differing_hypotheses if r.differing_hypotheses is not None else "-"
        text.append(f"| {r.chunk_ms:g} | {r.left_label} | {r.masked_wer:.2f} | {stream} | {differing} | {timing} |")
    text.append(f"\nCompute measured with {results[0].threads} thread(s) per stream.\n")
    (folder / "results.md").write_text("\n".join(text))
    plot_results(results, folder)


def _fmt(value):
    return "-" if value is None else f"{value:.0f}"


def plot_results(results: list[CellResult], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = next((r for r in results if r.chunk_frames is None), None)
    chunked = [r for r in results if r.chunk_frames is not None]
    lefts = []
    for r in chunked:
        if r.left_label not in lefts:
            lefts.append(r.left_label)

    def wer(r):
        return r.streaming_wer if r.streaming_wer is not None else r.masked_wer

    for name, xkey, xlabel in (
        ("wer_vs_chunk.png", "chunk_ms", "chunk size (ms)"),
        ("wer_vs_latency.png", "algorithmic_latency_ms", "algorithmic latency (ms): chunk + front-end look-ahead"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for left in lefts:
            cells = sorted((r for r in chunked if r.left_label == left), key=lambda r: r.chunk_ms)
            xs = [getattr(r, xkey) if getattr(r, xkey) is not None else r.chunk_ms for r in cells]
            ax.plot(xs, [wer(r) for r in cells], marker="o", label=f"left context {left}")
        if full is not None:
            ax.axhline(full.masked_wer, linestyle="--", color="black", label="full context")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("WER (%)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / name, dpi=120)
        plt.close(fig)


def evaluate(
    model_path: str,
    manifest: str,
    output: str,
    chunk_values: Sequence[str] = tuple(str(v) for v in DEFAULT_CHUNK_MS),
    unit: str = "ms",
    left_values: Sequence[str] = ("2", "4", "unlimited"),
    data_root: Optional[str] = None,
    overwrite: bool = False,
    threads: int = 1,
    jobs: int = 1,
    limit: Optional[int] = None,
    streaming: bool = True,
    device: str = "cpu",
    progress: bool = True,
    frontend: str = "exact",
) -> list[CellResult]:
    """Everything behind ``streamasr evaluate``; all input errors raise before work.
    ``jobs`` > 1 evaluates grid cells in parallel processes. ``frontend`` selects the
    true-streaming feature path: ``exact`` (ours) or ``stock`` (SpeechBrain's
    ``StreamingASR``, i.e. what an exported model gives under stock SpeechBrain)."""
    from streamasr.streaming import FRONTENDS

    if frontend not in FRONTENDS:
        raise ValueError(f"frontend must be one of {', '.join(FRONTENDS)}, got {frontend!r}")
    from streamasr.model import load_model

    folder = check_output(output, overwrite)
    model = load_model(model_path, device)
    chunks, lefts = parse_grid(chunk_values, unit, left_values, model.geometry.frame_ms)
    utterances = load_utterances(manifest, data_root, limit)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if jobs > 1:  # each worker process loads its own copy of the model and audio
        worker_args = (str(model_path), device, str(manifest), data_root, limit)
        results = run_sweep_parallel(worker_args, chunks, lefts, jobs, threads, streaming, progress, frontend)
    else:
        results = run_sweep(model, utterances, chunks, lefts, threads, streaming, progress, frontend)
    meta = {
        "model": str(model_path),
        "manifest": str(manifest),
        "threads": threads,
        "jobs": jobs,
        "frontend": frontend,
        "seconds": round(time.time() - start, 1),
        "frame_ms": model.geometry.frame_ms,
        "lookahead_ms": 1000 * model.geometry.lookahead_samples / model.geometry.sample_rate,
    }
    write_results(results, folder, meta)
    return results
