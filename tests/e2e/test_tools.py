"""The command-line tools and scripts: tools/chunk_position.py, the recipes' prepare.py."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers.common import REPO
from streamasr.evaluate import load_utterances
from streamasr.model import load_model

ROOT = REPO
sys.path.insert(0, str(ROOT / "tools"))
from chunk_position import deviation_by_position  # noqa: E402  (a script in tools/)


@pytest.fixture(scope="module")
def model(random_model_folder):
    return load_model(random_model_folder)


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


# ------------------------------------------------------------------ LibriSpeech
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


# ------------------------------------------------------------------ CommonVoice
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


# ------------------------------------------------------------------ VoxPopuli
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


def test_a_chunk_as_long_as_the_utterance_is_full_context(model, tiny_corpus):
    wav = load_utterances(tiny_corpus / "test.csv", None, 1)[0].wav
    frames = int(model.encoder_inputs([wav])[1][0])
    deviation = deviation_by_position(model, [wav], frames, None)
    assert len(deviation) == frames
    assert max(deviation) < 1e-4


def test_short_chunks_deviate_and_the_tool_writes_its_table(model, random_model_folder, tiny_corpus, tmp_path):
    wavs = [u.wav for u in load_utterances(tiny_corpus / "test.csv", None, 3)]
    deviation = deviation_by_position(model, wavs, 4, 2)
    assert len(deviation) == 4 and all(torch.isfinite(torch.tensor(deviation)))
    assert min(deviation) > 1e-3  # cutting attention and convolution at chunk edges changes every frame
    out = subprocess.run(
        [sys.executable, "tools/chunk_position.py", str(random_model_folder), "--manifest",
         str(tiny_corpus / "test.csv"), "--chunk-ms", "160,320", "--left-chunks", "2", "--limit", "3",
         "--json", str(tmp_path / "d.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 8 and rows[0].startswith("| 1 | ") and rows[7].startswith("| 8 |  | ")
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["deviation_by_frames_before_chunk_end"]["4"] == pytest.approx(deviation, rel=1e-3)


def test_a_chunk_size_off_the_frame_grid_is_an_error(random_model_folder, tiny_corpus):
    out = subprocess.run(
        [sys.executable, "tools/chunk_position.py", str(random_model_folder), "--manifest",
         str(tiny_corpus / "test.csv"), "--chunk-ms", "100"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "chunk size 100 ms is not a positive multiple of the encoder frame (40 ms)" in out.stderr


def test_recipe_prepare_scripts_run_the_cli(tmp_path):
    import subprocess
    import sys

    repo = REPO
    libri = tmp_path / "LibriSpeech"
    make_librispeech(libri)
    cv = tmp_path / "cv" / "en"
    make_commonvoice(cv, "en", {"train.tsv": [("Hello there.", 1.0)], "dev.tsv": [("Yes.", 1.0)],
                                "test.tsv": [("No!", 1.0)]})
    vox = tmp_path / "vox"
    make_voxpopuli(vox, "fr", {"train": [("20200101-a_0", "bonjour", 1.0)], "dev": [("20200101-b_0", "oui", 1.0)],
                               "test": [("20200101-c_0", "non", 1.0)]})
    runs = [("LibriSpeech", [str(libri), str(tmp_path / "m1"), "--train-splits", "train-clean-100",
                             "--valid-splits", "dev-clean", "--test-splits", "test-clean"]),
            ("CommonVoice", [str(cv), str(tmp_path / "m2"), "--language", "en"]),
            ("VoxPopuli", [str(vox), str(tmp_path / "m3"), "--language", "fr"])]
    for index, (recipe, args) in enumerate(runs, start=1):
        result = subprocess.run([sys.executable, str(repo / "recipes" / recipe / "prepare.py"), *args, "--jobs", "1"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert (tmp_path / f"m{index}" / "train.csv").exists()
    assert rows_of(tmp_path / "m2" / "test.csv")["common_voice_en_test0"]["wrd"] == "NO"
    assert rows_of(tmp_path / "m3" / "valid.csv")["20200101-b_0"]["wrd"] == "OUI"
