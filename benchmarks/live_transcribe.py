#!/usr/bin/env python3
"""Real-time factor and memory of live transcription on a long generated file.

    python benchmarks/live_transcribe.py --model results/demo --minutes 60 \
        --manifest data/synthetic/test_voices.csv [--chunk-ms 640 --left-chunks 4 --threads 2] [--backend onnx]

Builds a long 16 kHz WAV by concatenating the manifest's utterances (0.5 s of silence
between them) until ``--minutes`` is reached, then runs ``streamasr transcribe``'s code
path (file source read incrementally -> Transcriber -> events) and reports: wall time
and real-time factor (wall / audio), compute-only RTF (sum of per-chunk compute / audio),
median / p95 compute per chunk, and resident memory (RSS) after the first minute of
audio and at the end, with the growth between them.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def build_long_file(manifest: str, minutes: float, path: Path) -> float:
    from streamasr.data.manifest import read_manifest, resolve_path

    root = Path(manifest).parent
    rows = read_manifest(manifest)
    target = int(minutes * 60 * 16000)
    silence = np.zeros(8000, dtype=np.float32)
    written = 0
    with soundfile.SoundFile(path, "w", 16000, 1, "PCM_16") as handle:
        while written < target:
            for row in rows:
                audio, rate = soundfile.read(resolve_path(row["wav"], root), dtype="float32")
                if rate != 16000:
                    raise SystemExit(f"{row['wav']}: {rate} Hz, expected 16000")
                piece = np.concatenate([audio, silence])[: target - written]
                handle.write(piece)
                written += len(piece)
                if written >= target:
                    break
    return written / 16000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--chunk-ms", type=float, default=640)
    parser.add_argument("--left-chunks", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frontend", default="exact", choices=["exact", "stock"])
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    parser.add_argument("--int8", action="store_true", help="with --backend onnx: the int8 graphs")
    args = parser.parse_args()

    from streamasr.engine import Cell, EngineSpec
    from streamasr.live import open_source, transcribe_source
    from streamasr.model import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        seconds = build_long_file(args.manifest, args.minutes, path)
        chunk_ms, rss_after_first_minute, words = [], None, 0
        start = time.perf_counter()
        rss_start = rss_mb()
        spec = EngineSpec(Cell(args.chunk_ms, args.left_chunks), feature_path=args.frontend, backend=args.backend,
                          int8=args.int8)
        for event in transcribe_source(model, open_source(str(path)), spec):
            if event.kind == "partial":
                chunk_ms.append(event.compute_ms)
                if rss_after_first_minute is None and event.audio_ms >= 60_000:
                    rss_after_first_minute = rss_mb()
            else:
                words = len(event.text.split())
                final = event
        wall = time.perf_counter() - start
        rss_end = rss_mb()
    chunk_ms.sort()
    print(f"audio {seconds / 60:.1f} min, chunk {args.chunk_ms:g} ms, left {args.left_chunks} chunks, "
          f"threads {args.threads}, frontend {args.frontend}, backend {args.backend}{' int8' if args.int8 else ''}, "
          f"{words} words decoded")
    print("| metric | value |")
    print("|---|---|")
    print(f"| wall time | {wall:.1f} s |")
    print(f"| real-time factor (wall / audio) | {wall / seconds:.4f} |")
    print(f"| compute-only RTF | {final.compute_ms / 1000 / seconds:.4f} |")
    print(f"| compute per chunk, median / p95 | {statistics.median(chunk_ms):.1f} / "
          f"{chunk_ms[int(0.95 * (len(chunk_ms) - 1))]:.1f} ms |")
    print(f"| RSS at start / after 1 min of audio / at end | {rss_start:.0f} / {rss_after_first_minute:.0f} / "
          f"{rss_end:.0f} MB |")
    print(f"| RSS growth, after 1 min -> end | {rss_end - rss_after_first_minute:+.1f} MB |")
    print(f"| RSS growth, start -> end | {rss_end - rss_start:+.1f} MB |")


if __name__ == "__main__":
    main()
