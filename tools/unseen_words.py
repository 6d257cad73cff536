#!/usr/bin/env python3
"""Where a test set's word errors fall: on words seen in training or on unseen ones.

    python tools/unseen_words.py results/demo/wer_test_text.txt --train data/synthetic/train.csv

Reads the per-utterance alignments that ``train.py`` writes (``wer_<test set>.txt``,
SpeechBrain's format: reference, operations, hypothesis rows) and the training manifest,
and prints, for reference words seen in training and for unseen ones: how many there
are, how many were substituted or deleted, and each kind's share of the WER
(insertions belong to neither and are counted apart). With an open vocabulary this
separates "the model cannot spell a new word" from "the model mishears known words".
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path

_HEADER = re.compile(r"^(\S+), %WER [\d.]+ \[ \d+ / \d+")


def alignments(path: Path) -> list[tuple[str, list[str], list[str]]]:
    """(utterance id, reference tokens, operations) per utterance; ``<eps>`` marks an
    insertion in the reference row."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        match = _HEADER.match(line)
        if match and index + 2 < len(lines):
            reference = [token.strip() for token in lines[index + 1].split(";")]
            operations = [token.strip() for token in lines[index + 2].split(";")]
            if len(reference) != len(operations):
                raise ValueError(f"{path}: alignment of {match.group(1)} has rows of different lengths")
            found.append((match.group(1), reference, operations))
    if not found:
        raise ValueError(f"{path}: no per-utterance alignments (expected train.py's wer_<test set>.txt)")
    return found


def error_split(wer_file: Path, train_manifest: Path) -> dict:
    with open(train_manifest, newline="", encoding="utf-8") as handle:
        known = {word for row in csv.DictReader(handle) for word in row["wrd"].split()}
    counts = {"seen": [0, 0], "unseen": [0, 0]}  # [words, errors]
    insertions = 0
    for _, reference, operations in alignments(wer_file):
        for word, operation in zip(reference, operations):
            if word == "<eps>":
                insertions += operation == "I"
                continue
            kind = "seen" if word in known else "unseen"
            counts[kind][0] += 1
            counts[kind][1] += operation in ("S", "D")
    words = counts["seen"][0] + counts["unseen"][0]
    result = {"reference_words": words, "insertions": insertions,
              "wer": round(100 * (counts["seen"][1] + counts["unseen"][1] + insertions) / max(1, words), 2)}
    for kind, (total, errors) in counts.items():
        result[kind] = {
            "words": total,
            "share_of_words": round(100 * total / max(1, words), 2),
            "error_rate": round(100 * errors / max(1, total), 2),
            "wer_points": round(100 * errors / max(1, words), 2),
        }
    result["wer_points_insertions"] = round(100 * insertions / max(1, words), 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wer_files", nargs="+", help="train.py's wer_<test set>.txt")
    parser.add_argument("--train", required=True, help="the training manifest (its wrd column)")
    parser.add_argument("--json", default=None, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    rows = {}
    print("| test set | WER | unseen words (% of words) | error rate on unseen | on seen | WER points: unseen "
          "/ seen / insertions |")
    print("|---|---|---|---|---|---|")
    for name in args.wer_files:
        try:
            r = error_split(Path(name), Path(args.train))
        except (OSError, ValueError, KeyError) as error:
            print(f"unseen_words.py: error: {error}", file=sys.stderr)
            return 2
        rows[name] = r
        print(f"| {Path(name).stem.removeprefix('wer_')} | {r['wer']:.2f} | {r['unseen']['share_of_words']:.1f} "
              f"| {r['unseen']['error_rate']:.1f} | {r['seen']['error_rate']:.1f} | {r['unseen']['wer_points']:.1f} "
              f"/ {r['seen']['wer_points']:.1f} / {r['wer_points_insertions']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
