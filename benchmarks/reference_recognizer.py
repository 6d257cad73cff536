"""A classic recogniser trained on people, on the same test sets: PocketSphinx 5.1.1's
default US English model (acoustic model, 3-gram LM, CMUdict), offline, one utterance at
a time, as a reference row beside the demo model's WERs.

    pip install 'pocketsphinx==5.1.1'          # or: pip install -e '.[reference]'
    python benchmarks/reference_recognizer.py --data-folder data/synthetic \
        [--sets test_human test_human_unseen] [--max-utterances N] [--output results/reference]

Prints one row per test set (utterances, words, WER, real-time factor) and writes
``reference.md`` / ``reference.json`` and the hypotheses (``hyp_<set>.txt``) into
``--output``. PocketSphinx's hypotheses are upper-cased and scored as the corpus's
transcripts are (SpeechBrain's ErrorRateStats). It is an independent, weak reference: a
2000s-era GMM recogniser with a general-purpose LM, nothing tuned to these sets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_SETS = ("test_voices", "test_text", "test_synth", "test_human", "test_human_unseen")


def decoder():
    """PocketSphinx's default en-us decoder, or SystemExit naming what to install."""
    try:
        from pocketsphinx import Decoder
    except ImportError as error:
        raise SystemExit(f"reference_recognizer.py: pocketsphinx is not installed ({error}): "
                         "pip install 'pocketsphinx==5.1.1' (or pip install -e '.[reference]')") from None
    return Decoder(samprate=16000, loglevel="FATAL")


def transcribe(dec, audio: np.ndarray) -> str:
    """PocketSphinx's upper-case hypothesis for float32 16 kHz mono ``audio``."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    hyp = dec.hyp()
    return " ".join(hyp.hypstr.upper().split()) if hyp is not None else ""


def score(data_folder: Path, name: str, dec, limit: int | None, output: Path | None) -> dict:
    from speechbrain.dataio.dataio import read_audio
    from speechbrain.utils.metric_stats import ErrorRateStats

    from streamasr.data.manifest import read_manifest, resolve_path
    from streamasr.data.normalize import normalize_text

    manifest = data_folder / f"{name}.csv"
    rows = read_manifest(manifest)
    rows = rows[:limit] if limit else rows
    stats = ErrorRateStats()
    audio_s = compute_s = 0.0
    lines = []
    for row in rows:
        audio = read_audio(resolve_path(row["wav"], str(data_folder))).float().numpy()
        start = time.perf_counter()
        hyp = normalize_text(transcribe(dec, audio))  # as the transcripts are
        compute_s += time.perf_counter() - start
        audio_s += len(audio) / 16000
        stats.append([row["ID"]], [hyp.split()], [row["wrd"].split()])
        lines.append(f"{row['ID']}\tREF {row['wrd']}\tHYP {hyp}")
    if output is not None:
        (output / f"hyp_{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = stats.summarize()
    return {"set": name, "utterances": len(rows), "words": int(summary["num_scored_tokens"]),
            "wer": round(float(summary["WER"]), 2), "rtf": round(compute_s / max(audio_s, 1e-9), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-folder", default="data/synthetic", help="corpus folder (default %(default)s)")
    parser.add_argument("--sets", nargs="+", default=None,
                        help="test manifests (names in --data-folder; default: every one of "
                        f"{', '.join(DEFAULT_SETS)} that exists)")
    parser.add_argument("--max-utterances", type=int, default=None, help="the first N (>= 1) of each set")
    parser.add_argument("--output", default=None, help="folder for reference.md/.json and the hypotheses")
    args = parser.parse_args(argv)
    if args.max_utterances is not None and args.max_utterances < 1:
        parser.error(f"--max-utterances: expected at least 1, got {args.max_utterances}")
    folder = Path(args.data_folder)
    sets = args.sets or [name for name in DEFAULT_SETS if (folder / f"{name}.csv").is_file()]
    missing = [name for name in sets if not (folder / f"{name}.csv").is_file()]
    if missing or not sets:
        print(f"reference_recognizer.py: error: no manifest {', '.join(missing) or 'of ' + ', '.join(DEFAULT_SETS)}"
              f" in {folder} (build it with `streamasr build-corpus {folder}`)", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else None
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    dec = decoder()
    results = [score(folder, name, dec, args.max_utterances, output) for name in sets]
    table = ["| test set | utterances | words | PocketSphinx 5.1.1 WER % | RTF (1 thread) |", "|---|---|---|---|---|"]
    table += [f"| {r['set']} | {r['utterances']} | {r['words']} | {r['wer']:.2f} | {r['rtf']:.3f} |" for r in results]
    print("\n".join(table))
    if output is not None:
        (output / "reference.md").write_text("\n".join(table) + "\n", encoding="utf-8")
        (output / "reference.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
