"""tools/chunk_position.py: chunked-vs-full deviation by position in the chunk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from chunk_position import deviation_by_position  # noqa: E402

from streamasr.evaluate import load_utterances  # noqa: E402
from streamasr.model import load_model  # noqa: E402


@pytest.fixture(scope="module")
def model(random_model_folder):
    return load_model(random_model_folder)


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
