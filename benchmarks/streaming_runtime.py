#!/usr/bin/env python3
"""Streaming runtime: PyTorch vs onnxruntime backends, one stream and many streams at
different positions, side by side in one run.

    python benchmarks/streaming_runtime.py --model results/demo --manifest data/synthetic/test_voices.csv
    python benchmarks/streaming_runtime.py --model results/demo --manifest data/synthetic/test_voices.csv \
        --chunk-ms 640 --left-chunks 4 --streams 32 --threads 2 --int8

Prints two tables:

1. **One stream**: compute real-time factor (front end + encoder + greedy search, per
   chunk, summed over the utterances / their duration) of each engine: SpeechBrain's
   streaming contexts (the engine before the fixed-shape state), the PyTorch
   fixed-shape step, onnxruntime (and int8), the utterances decoded in turn by every
   engine (interleaved, so machine noise hits all alike; median of ``--repeats``).
2. **Many streams at different positions**: ``--streams`` streams of ``--stream-seconds``
   of audio each, joining over the first 16 chunks (so they sit at different positions),
   decoded with ``decode_streams`` (one batched call per tick for all ready streams):
   compute per stream per chunk against the same figure for one stream alone.

Memory over an hour of audio: ``benchmarks/live_transcribe.py --backend onnx``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _interleaved import interleaved_medians  # noqa: E402

from streamasr.engine import EngineSpec, backend_for  # noqa: E402
from streamasr.evaluate import load_utterances  # noqa: E402
from streamasr.model import load_model  # noqa: E402
from streamasr.streaming import StreamingRecognizer  # noqa: E402
from streamasr.streaming.backends import ContextBackend  # noqa: E402
from streamasr.units import SAMPLE_RATE  # noqa: E402


def single_stream_rtf(recognizer: StreamingRecognizer, wavs: list[torch.Tensor]) -> float:
    compute, audio = 0.0, 0.0
    for wav in wavs:
        _, outputs = recognizer.transcribe(wav)
        compute += sum(o.compute_seconds for o in outputs)
        audio += wav.shape[-1] / SAMPLE_RATE
    return compute / audio


def long_sources(wavs: list[torch.Tensor], streams: int, seconds: float) -> list[torch.Tensor]:
    """One audio per stream: test utterances concatenated (from a different start for
    each stream) to at least ``seconds``."""
    sources = []
    for index in range(streams):
        pieces, total, k = [], 0, index
        while total < seconds * SAMPLE_RATE:
            pieces.append(wavs[k % len(wavs)])
            total += pieces[-1].shape[-1]
            k += 1
        sources.append(torch.cat(pieces))
    return sources


def many_streams(recognizer: StreamingRecognizer, sources: list[torch.Tensor], spread: int = 16
                 ) -> tuple[float, float]:
    """Stream ``i`` joins at tick ``i % spread`` (so streams sit at different positions),
    each tick feeds every active stream one chunk of audio and makes one
    ``decode_streams`` call; returns compute per stream per chunk (ms) and the mean
    number of streams per call."""
    step = recognizer.chunk_samples
    streams = [recognizer.create_stream() for _ in sources]
    fed = [0] * len(sources)
    compute, chunks, batch_sizes, tick = 0.0, 0, [], 0
    while not all(stream.finished for stream in streams):
        for index, (stream, wav) in enumerate(zip(streams, sources)):
            if tick >= index % spread and fed[index] < wav.shape[-1]:
                recognizer.accept_waveform(stream, wav[fed[index] : fed[index] + step])
                fed[index] += step
                if fed[index] >= wav.shape[-1]:
                    recognizer.input_finished(stream)
        start = time.perf_counter()
        outputs = recognizer.decode_streams(streams)
        ready = sum(o is not None for o in outputs)
        if ready:
            compute += time.perf_counter() - start
            chunks += ready
            batch_sizes.append(ready)
        tick += 1
    return 1000 * compute / chunks, statistics.fmean(batch_sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--chunk-ms", type=float, default=640)
    parser.add_argument("--left-chunks", type=int, default=4)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--stream-seconds", type=float, default=30, help="audio per stream in the many-streams table")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=20, help="utterances for the one-stream table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--int8", action="store_true", help="also the int8 ONNX graphs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    config = DynChunkTrainConfig(model.geometry.frames_from_ms(args.chunk_ms), args.left_chunks)
    wavs = [u.wav for u in load_utterances(args.manifest, None, args.limit)]
    engines = {
        "PyTorch, SpeechBrain contexts": StreamingRecognizer(model, config, backend=ContextBackend(model, config)),
        "PyTorch, fixed-shape step": StreamingRecognizer(model, config),
        "onnxruntime": StreamingRecognizer(model, config, backend=backend_for(
            model, config, EngineSpec(backend="onnx", threads=args.threads))),
    }
    if args.int8:
        engines["onnxruntime int8"] = StreamingRecognizer(
            model, config, backend=backend_for(model, config, EngineSpec(backend="onnx", int8=True,
                                                                         threads=args.threads)))
    audio = sum(w.shape[-1] for w in wavs) / SAMPLE_RATE
    print(f"model {args.model}; {len(wavs)} utterances, {audio:.1f} s; chunk {args.chunk_ms:g} ms, "
          f"{args.left_chunks} left chunks; {args.threads} threads; median of {args.repeats} interleaved rounds")
    rtf = interleaved_medians([(name, lambda _, r=engine: single_stream_rtf(r, wavs)) for name, engine in
                               engines.items()], args.repeats)
    base = rtf["PyTorch, fixed-shape step"]
    print("\n| engine (one stream) | compute RTF | speed-up vs PyTorch fixed-shape |")
    print("|---|---|---|")
    for name, value in rtf.items():
        print(f"| {name} | {value:.4f} | {base / value:.2f}x |")

    print("\n| backend | streams | mean streams per call | ms per stream per chunk | one stream, ms per chunk "
          "| ratio |")
    print("|---|---|---|---|---|---|")
    sources = long_sources(wavs, args.streams, args.stream_seconds)
    for name in [n for n in engines if n != "PyTorch, SpeechBrain contexts"]:
        engine = engines[name]
        single, _ = many_streams(engine, sources[:1])
        batched, mean_batch = many_streams(engine, sources)
        print(f"| {name} | {args.streams} | {mean_batch:.1f} | {batched:.2f} | {single:.2f} | "
              f"{batched / single:.2f} |")

    return 0


if __name__ == "__main__":
    sys.exit(main())
