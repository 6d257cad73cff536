"""LibriSpeech (openslr.org/12) in its official layout -> SpeechBrain manifests.

    <data_folder>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <data_folder>/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
        (one line per utterance: "<speaker>-<chapter>-<utt> TRANSCRIPT")

Splits: train-clean-100, train-clean-360, train-other-500, dev-clean, dev-other,
test-clean, test-other (any subset). Training splits are merged into ``train.csv``,
the validation splits into ``valid.csv``; each test split keeps its own manifest
(``test-clean.csv``, ``test-other.csv``) because results are reported per split.
The speaker id is the LibriSpeech speaker; transcripts go through the English
normaliser (they are upper case without punctuation already).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from streamasr.data.normalize import normalize_text
from streamasr.data.prepare import Problem, Utterance, prepare_splits, read_text_lines
from streamasr.errors import ConfigError

SPLITS = ("train-clean-100", "train-clean-360", "train-other-500",
          "dev-clean", "dev-other", "test-clean", "test-other")
_UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def scan_split(data_folder: Path, split: str) -> tuple[list[Utterance], list[Problem], list[str]]:
    """Utterances, layout problems and input files (transcripts) of one split."""
    root = Path(data_folder) / split
    if not root.is_dir():
        return [], [Problem(str(root), f"split folder {split} is missing; expected "
                            f"{split}/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt")], []
    utterances, problems, inputs = [], [], []
    transcribed: set[Path] = set()
    for trans in sorted(root.glob("*/*/*.trans.txt")):
        inputs.append(str(trans))
        lines, bad_lines = read_text_lines(trans)
        problems += bad_lines
        speaker = trans.parent.parent.name
        for number, line in lines:
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            origin = f"{trans}:{number}"
            match = _UTT_ID.match(utt_id)
            if not match or not text.strip():
                problems.append(Problem(origin, f"malformed transcript line {line[:60]!r}; "
                                        "expected '<speaker>-<chapter>-<utt> TEXT'"))
                continue
            audio = trans.parent / f"{utt_id}.flac"
            if not audio.is_file():
                problems.append(Problem(origin, f"transcript line for {utt_id} has no audio "
                                        f"(expected {audio})"))
                continue
            transcribed.add(audio)
            utterances.append(Utterance(utt_id, str(audio), speaker, normalize_text(text, "en"), origin))
    for audio in sorted(root.glob("*/*/*.flac")):
        inputs.append(str(audio))
        if audio not in transcribed:
            problems.append(Problem(str(audio), "audio file has no transcript line in "
                                    f"{audio.parent.parent.name}-{audio.parent.name}.trans.txt"))
    if not utterances and not problems:
        problems.append(Problem(str(root), "split folder holds no *.trans.txt transcripts"))
    return utterances, problems, inputs


def prepare_librispeech(
    data_folder: str | Path,
    manifest_folder: str | Path,
    train_splits: Sequence[str] = ("train-clean-100", "train-clean-360", "train-other-500"),
    valid_splits: Sequence[str] = ("dev-clean",),
    test_splits: Sequence[str] = ("test-clean", "test-other"),
    skip_bad: bool = False,
    jobs: int | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Write ``train.csv``, ``valid.csv`` and one ``<test split>.csv`` per test split
    into ``manifest_folder``; returns ``{name: path}``. See the module docstring."""
    for split in (*train_splits, *valid_splits, *test_splits):
        if split not in SPLITS:
            raise ConfigError(f"unknown LibriSpeech split {split!r}; expected any of {', '.join(SPLITS)}")
    groups = {"train": list(train_splits), "valid": list(valid_splits)}
    groups.update({split: [split] for split in test_splits})
    splits = {}
    for name, members in groups.items():
        if not members:
            continue
        merged: tuple[list, list, list] = ([], [], [])
        for split in members:
            for part, items in zip(merged, scan_split(Path(data_folder), split)):
                part.extend(items)
        splits[name] = merged
    return prepare_splits("LibriSpeech", splits, Path(manifest_folder), Path(data_folder),
                          options={"groups": groups}, skip_bad=skip_bad, jobs=jobs, progress=progress)
