"""Exported folders under stock SpeechBrain (in a process that never imports
streamasr) give our stock-front-end streaming hypotheses; the exported folder
transcribes like the training folder."""

from __future__ import annotations

import subprocess
import sys

import pytest
import soundfile
import speechbrain as sb
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from helpers.common import cli, reference_text, run_stock
from streamasr.export import export
from streamasr.model import load_model
from streamasr.streaming import StreamingRecognizer


@pytest.mark.parametrize("chunk,left", [(16, 4), (8, 2)])
def test_stock_speechbrain_equals_our_stock_front_end_streaming(exported, random_model_folder, files, chunk, left):
    stock = run_stock(exported, chunk, left, files)
    assert stock["streamasr_imported"] is False
    model = load_model(random_model_folder)
    ours = []
    for path in files:

        state, _ = StreamingRecognizer(model, DynChunkTrainConfig(chunk, left), frontend="stock").transcribe(
            sb.dataio.dataio.read_audio(str(path))
        )
        ours.append(state.result.text)
    assert [s.strip() for s in stock["single"]] == [o.strip() for o in ours]
    assert all(len(o.strip()) >= 20 for o in ours)  # not vacuous: many tokens are emitted


def test_stock_batch_of_streams_matches_the_same_streams_one_at_a_time(exported, files, tmp_path):

    # Equal lengths, so that the batch adds no padding a single stream would not see.
    clips = [soundfile.read(f, dtype="float32")[0] for f in files]
    shortest = min(len(c) for c in clips)
    paths = []
    for index, clip in enumerate(clips):
        paths.append(tmp_path / f"clip{index}.wav")
        soundfile.write(paths[-1], clip[:shortest], 16000, subtype="FLOAT")
    stock = run_stock(exported, 16, 4, paths)
    assert stock["batched"] == stock["alone"]  # one batch of 3 streams == each stream alone
    assert len(set(stock["alone"])) == 3 and all(len(t) >= 20 for t in stock["alone"])


def test_export_command_line(tiny_model_folder, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "streamasr.cli", "export", str(tiny_model_folder), str(tmp_path / "m"),
         "--average", "2"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wrote" in result.stdout and (tmp_path / "m" / "model.ckpt").is_file()
    again = subprocess.run(
        [sys.executable, "-m", "streamasr.cli", "export", str(tiny_model_folder), str(tmp_path / "m")],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 2
    assert "already exists (use --overwrite" in again.stderr and "Traceback" not in again.stderr


def test_exported_folder_transcribes_like_the_training_folder(random_model_folder, tmp_path, wavs, model):

    folder = export(random_model_folder, tmp_path / "exported")
    result = cli("transcribe", wavs[2], "--model", folder)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().strip() == reference_text(model, wavs[2]).strip()
