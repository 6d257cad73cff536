#!/usr/bin/env python3
"""How fast corpus preparation reads audio, per core, for each corpus's format.

    python benchmarks/prepare_speed.py [--manifest data/synthetic/test_voices.csv] [--files 100]

Preparation decodes every clip once (to validate it and measure its duration) and, for
CommonVoice, resamples 48 kHz mp3 to 16 kHz and writes WAV. This re-encodes speech
from a manifest (or a synthetic chirp when none is given) as LibriSpeech-like FLAC
(16 kHz), VoxPopuli-like Ogg Vorbis (16 kHz) and CommonVoice-like MP3 (48 kHz), runs
``streamasr.data.prepare.inspect_audio`` on each file in one process, and prints a table:
speed in x real time per core and core-hours per 1,000 h of audio (divide by the
``--jobs`` of ``streamasr prepare`` for wall time).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from streamasr.data.prepare import _init_worker, inspect_audio

FORMATS = (  # name, corpus, rate, soundfile kwargs
    ("FLAC 16 kHz", "LibriSpeech", 16000, dict(format="FLAC")),
    ("Ogg Vorbis 16 kHz", "VoxPopuli", 16000, dict(format="OGG", subtype="VORBIS")),
    ("MP3 48 kHz -> 16 kHz WAV", "CommonVoice", 48000, dict(format="MP3")),
)


def source_audio(manifest: str | None, files: int) -> list[np.ndarray]:
    """16 kHz float32 clips: speech from ``manifest`` or 4-second chirps."""
    if manifest:
        from streamasr.data.manifest import read_manifest, resolve_path

        rows = read_manifest(manifest)[:files]
        root = str(Path(manifest).parent)
        return [sf.read(resolve_path(row["wav"], root), dtype="float32")[0] for row in rows]
    t = np.arange(4 * 16000) / 16000
    return [(0.3 * np.sin(2 * np.pi * (150 + 40 * i + 200 * t) * t)).astype("float32") for i in range(files)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default=None, help="speech to re-encode (default: chirps)")
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    _init_worker()  # one thread, as in the preparation worker processes
    clips = source_audio(args.manifest, args.files)
    seconds = sum(len(c) for c in clips) / 16000
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, corpus, rate, kwargs in FORMATS:
            jobs = []
            for index, clip in enumerate(clips):
                audio = clip if rate == 16000 else torchaudio.functional.resample(
                    torch.from_numpy(clip), 16000, rate).numpy()
                path = folder / f"{corpus}_{index}.{kwargs['format'].lower()}"
                sf.write(path, audio, rate, **kwargs)
                jobs.append((str(path), str(folder / "converted" / f"{corpus}_{index}.wav")))
            start = time.perf_counter()
            results = [inspect_audio(job) for job in jobs]
            wall = time.perf_counter() - start
            bad = [problem for _, problem, _ in results if problem]
            if bad:
                raise SystemExit(f"{name}: {bad[0]}")
            speed = seconds / wall
            rows.append((name, corpus, len(jobs), seconds, wall, speed, 1000 / speed))
    print(f"\n{len(clips)} clips, {seconds / 60:.1f} min of audio "
          f"({'speech from ' + args.manifest if args.manifest else 'synthetic chirps'}), 1 thread\n")
    print("| format | corpus | files | audio s | wall s | x real time / core | core-h per 1,000 h |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, corpus, files, audio, wall, speed, hours in rows:
        print(f"| {name} | {corpus} | {files} | {audio:.0f} | {wall:.2f} | {speed:.0f} | {hours:.2f} |")


if __name__ == "__main__":
    main()
