"""Fixture trees in the official layouts of the real corpora (LibriSpeech FLAC,
CommonVoice 48 kHz mp3 with its 13-column TSV, VoxPopuli ogg), made by the tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf


def tone(path: Path, seconds: float, rate: int, **kwargs) -> int:
    """A short chirp of exactly round(seconds * rate) samples; returns that count."""
    frames = int(round(seconds * rate))
    t = np.arange(frames) / rate
    audio = (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype("float32")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, **kwargs)
    return frames


def rows_of(manifest: Path) -> dict[str, dict]:
    with open(manifest, newline="", encoding="utf-8") as handle:
        return {row["ID"]: row for row in csv.DictReader(handle)}


LIBRI = {
    "train-clean-100": {("19", "198"): {"0001": ("CHAPTER ONE MISSUS RACHEL", 1.23),
                                        "0002": ("IT'S A FINE DAY", 2.005)},
                        ("26", "495"): {"0000": ("AND SO THEY WENT", 0.87)}},
    "dev-clean": {("84", "121123"): {"0000": ("GO DO YOU HEAR", 1.5)}},
    "test-clean": {("1089", "134686"): {"0000": ("HE HOPED THERE WOULD BE STEW", 3.141)}},
}


def make_librispeech(root: Path, tree=LIBRI) -> dict[str, int]:
    frames = {}
    for split, chapters in tree.items():
        for (speaker, chapter), utterances in chapters.items():
            folder = root / split / speaker / chapter
            folder.mkdir(parents=True, exist_ok=True)
            lines = []
            for utt, (text, seconds) in utterances.items():
                utt_id = f"{speaker}-{chapter}-{utt}"
                frames[utt_id] = tone(folder / f"{utt_id}.flac", seconds, 16000)
                lines.append(f"{utt_id} {text}\n")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines), encoding="utf-8")
    return frames


CV_HEADER = ("client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\t"
             "age\tgender\taccents\tvariant\tlocale\tsegment")


def cv_row(client: str, clip: str, sentence: str, locale: str) -> str:
    return "\t".join([client, clip, "s1", sentence, "", "2", "0", "", "", "", "", locale, ""])


def make_commonvoice(root: Path, locale: str, sentences: dict[str, list[tuple[str, float]]]):
    frames = {}
    for tsv, items in sentences.items():
        lines = [CV_HEADER]
        for index, (sentence, seconds) in enumerate(items):
            clip = f"common_voice_{locale}_{tsv[:-4]}{index}.mp3"
            source_frames = tone(root / "clips" / clip, seconds, 48000, format="MP3")
            frames[Path(clip).stem] = source_frames / 3  # at 16 kHz
            lines.append(cv_row(f"client{index % 2}", clip, sentence, locale))
        (root / tsv).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return frames


VOX_HEADER = "id\traw_text\tnormalized_text\tspeaker_id\tsplit\tgender\tis_gold_transcript\taccent"


def make_voxpopuli(root: Path, language: str, splits: dict[str, list[tuple[str, str, float]]]):
    folder = root / "transcribed_data" / language
    frames = {}
    for name, items in splits.items():
        lines = [VOX_HEADER]
        for utt_id, text, seconds in items:
            frames[utt_id] = tone(folder / utt_id[:4] / f"{utt_id}.ogg", seconds, 16000,
                                  format="OGG", subtype="VORBIS")
            lines.append("\t".join([utt_id, text.capitalize() + ".", text, "1234", name, "female",
                                    "True", "None"]))
        (folder / f"asr_{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return frames
