"""The command-line tools and scripts: tools/chunk_position.py, the recipes' prepare.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from helpers.common import REPO
from helpers.corpora import make_commonvoice, make_librispeech, make_voxpopuli, rows_of
from streamasr.evaluate import load_utterances

ROOT = REPO
sys.path.insert(0, str(ROOT / "tools"))
from chunk_position import deviation_by_position  # noqa: E402  (a script in tools/)

# ------------------------------------------------------------------ LibriSpeech


# ------------------------------------------------------------------ CommonVoice


# ------------------------------------------------------------------ VoxPopuli


def test_a_chunk_as_long_as_the_utterance_is_full_context(model, tiny_corpus):
    wav = load_utterances(tiny_corpus / "test_voices.csv", None, 1)[0].wav
    frames = int(model.encoder_inputs([wav])[1][0])
    deviation = deviation_by_position(model, [wav], frames, None)
    assert len(deviation) == frames
    assert max(deviation) < 1e-4


def test_short_chunks_deviate_and_the_tool_writes_its_table(model, random_model_folder, tiny_corpus, tmp_path):
    wavs = [u.wav for u in load_utterances(tiny_corpus / "test_voices.csv", None, 3)]
    deviation = deviation_by_position(model, wavs, 4, 2)
    assert len(deviation) == 4 and all(torch.isfinite(torch.tensor(deviation)))
    assert min(deviation) > 1e-3  # cutting attention and convolution at chunk edges changes every frame
    out = subprocess.run(
        [sys.executable, "tools/chunk_position.py", str(random_model_folder), "--manifest",
         str(tiny_corpus / "test_voices.csv"), "--chunk-ms", "160,320", "--left-chunks", "2", "--limit", "3",
         "--json", str(tmp_path / "d.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 8 and rows[0].startswith("| 1 | ") and rows[7].startswith("| 8 |  | ")
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["deviation_by_frames_before_chunk_end"]["4"] == pytest.approx(deviation, rel=1e-3)


def test_lookahead_columns_and_less_departure_at_the_chunk_end(model, random_model_folder, tiny_corpus, tmp_path):
    """--right-ms: one column per chunk size and look-ahead; with 4 frames of look-ahead
    the chunk's last frame departs less from full context than without."""
    out = subprocess.run(
        [sys.executable, "tools/chunk_position.py", str(random_model_folder), "--manifest",
         str(tiny_corpus / "test_voices.csv"), "--chunk-ms", "160", "--right-ms", "0,160", "--left-chunks", "2",
         "--limit", "3", "--json", str(tmp_path / "d.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| frames before chunk end | 160 ms chunks | 160 ms chunks + 160 ms look-ahead |" in out.stdout
    saved = json.loads((tmp_path / "d.json").read_text())["deviation_by_frames_before_chunk_end"]
    assert set(saved) == {"4", "4+4"}
    assert saved["4+4"][0] < saved["4"][0]


def test_a_chunk_size_off_the_frame_grid_is_an_error(random_model_folder, tiny_corpus):
    out = subprocess.run(
        [sys.executable, "tools/chunk_position.py", str(random_model_folder), "--manifest",
         str(tiny_corpus / "test_voices.csv"), "--chunk-ms", "100"], cwd=ROOT, capture_output=True, text=True, timeout=300)
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


def test_train_py_scores_the_human_test_sets_and_evaluate_reads_them(tmp_path, tiny_model_folder, tiny_corpus):
    for name in ("test_human", "test_human_unseen"):
        wer = (tiny_model_folder / f"wer_{name}.txt").read_text()
        assert re.search(r"%WER [\d.]+ \[ \d+ / \d+", wer), wer[:300]
        assert f"{name}-000000" in wer  # scored per utterance
    code = subprocess.run([sys.executable, "-m", "streamasr.cli", "evaluate", str(tiny_model_folder), "--manifest",
                           str(tiny_corpus / "test_human_unseen.csv"), "--output", str(tmp_path / "eval"),
                           "--chunk-ms", "640", "--left-chunks", "4", "--masked-only", "--jobs", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert code.returncode == 0, code.stderr[-2000:]
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["cells"][0]["utterances"] == 3


def test_unseen_words_splits_the_wer_of_train_py_exactly(tiny_model_folder, tiny_corpus, tmp_path):
    import re

    from unseen_words import error_split  # noqa: E402  (a script in tools/)

    for name in ("test_voices", "test_text", "test_synth"):
        wer_file = tiny_model_folder / f"wer_{name}.txt"
        result = error_split(wer_file, tiny_corpus / "train.csv")
        reported = float(re.search(r"^%WER ([\d.]+)", wer_file.read_text(), flags=re.MULTILINE).group(1))
        assert result["wer"] == pytest.approx(reported, abs=0.01), name
        points = result["unseen"]["wer_points"] + result["seen"]["wer_points"] + result["wer_points_insertions"]
        assert points == pytest.approx(reported, abs=0.05), name
        assert result["unseen"]["words"] + result["seen"]["words"] == result["reference_words"]
    assert error_split(tiny_model_folder / "wer_test_text.txt", tiny_corpus / "train.csv")["unseen"]["words"] > 0
    bad = tmp_path / "wer.txt"
    bad.write_text("%WER 1.00 [ 1 / 100 ]\n")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "unseen_words.py"), str(bad), "--train",
                           str(tiny_corpus / "train.csv")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no per-utterance alignments" in done.stderr
