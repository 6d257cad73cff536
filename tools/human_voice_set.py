#!/usr/bin/env python3
"""A tiny test set of a real human voice: the eight ALSA speaker-test recordings.

    python tools/human_voice_set.py data/human
    streamasr evaluate results/demo --manifest data/human/test_human.csv --output out \
        --chunk-ms 640 --left-chunks 4

Debian's ``alsa-utils`` (a dependency of festival, so present wherever the built-in corpus
is built) ships ``/usr/share/sounds/alsa/{Front,Rear,Side}_{Left,Right,Center}.wav``:
one person saying "front left", "rear center" and so on, recorded at 48 kHz. They are the
only human speech on these machines, so they are what we can say about a model trained
on synthetic speech meeting a human voice: 8 utterances, 16 words, 6 distinct words, one
speaker. Far too small for a WER to mean much beyond "recognised or not"; read the
hypotheses. This script resamples them to 16 kHz mono and writes a SpeechBrain manifest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SOUNDS = Path("/usr/share/sounds/alsa")
NAMES = ("Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
         "Side_Left", "Side_Right")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="folder for the 16 kHz wav files and test_human.csv")
    parser.add_argument("--sounds", default=str(SOUNDS), help="folder of the ALSA recordings (default %(default)s)")
    args = parser.parse_args(argv)
    sounds, out = Path(args.sounds), Path(args.output)
    missing = [name for name in NAMES if not (sounds / f"{name}.wav").is_file()]
    if missing:
        print(f"human_voice_set.py: error: {', '.join(missing)} not found in {sounds}: install the Debian "
              "package 'alsa-utils' (`sudo apt-get install alsa-utils`)", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    lines = ["ID,duration,wav,spk_id,wrd"]
    for name in NAMES:
        audio, rate = sf.read(sounds / f"{name}.wav", dtype="float32")
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        if rate != 48000:
            print(f"human_voice_set.py: error: {sounds / name}.wav is {rate} Hz, expected 48000", file=sys.stderr)
            return 2
        audio = resample_poly(audio, 1, 3).astype(np.float32)
        sf.write(out / f"{name}.wav", audio, 16000, subtype="PCM_16")
        lines.append(f"human-{name},{len(audio) / 16000:.3f},$data_root/{name}.wav,alsa,{name.replace('_', ' ').upper()}")
    (out / "test_human.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(NAMES)} recordings written to {out}; manifest {out / 'test_human.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
