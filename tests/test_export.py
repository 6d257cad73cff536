"""Export for stock SpeechBrain StreamingASR: loads without streamasr, gives our
stock-front-end streaming hypotheses, averages checkpoints, refuses bad folders."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from conftest import REPO, audio_paths
from streamasr.export import ExportError, check_model_folder, export, push_to_hub
from streamasr.model import load_model
from streamasr.streaming import StreamingRecognizer

STOCK = REPO / "tools" / "stock_streaming_asr.py"


@pytest.fixture(scope="module")
def exported(random_model_folder, tmp_path_factory):
    # Random weights: greedy search emits many tokens, so equality is not vacuous.
    return export(random_model_folder, tmp_path_factory.mktemp("export") / "model", average=1)


@pytest.fixture(scope="module")
def files(tiny_corpus):
    return audio_paths(tiny_corpus)[:3]


def run_stock(folder, chunk, left, files):
    result = subprocess.run(
        [sys.executable, str(STOCK), str(folder), *map(str, files), "--chunk-frames", str(chunk),
         "--left-chunks", str(left), "--json"],
        capture_output=True, text=True, timeout=600, cwd="/",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_folder_has_every_file_and_a_hub_model_card(exported):
    for name in ("hyperparams.yaml", "model.ckpt", "normalizer.ckpt", "tokenizer.ckpt", "README.md", "example.wav"):
        assert (exported / name).is_file(), name
    card = (exported / "README.md").read_text()
    front = card.split("---")[1]
    for line in ("language: en", "license: apache-2.0", "- automatic-speech-recognition", "- streaming",
                 "- speechbrain", "- wer"):
        assert line in front
    assert "StreamingASR.from_hparams" in card and "DynChunkTrainConfig(16, 4)" in card
    assert re.search(r"Test WER \(full context, greedy\): [\d.]+ %", card)
    yaml_text = (exported / "hyperparams.yaml").read_text()
    assert not re.search(r"!\w+:streamasr", yaml_text)  # stock classes only
    assert "top_db" in yaml_text  # the streamable Fbank settings travel with the model
    assert not re.search(r"^(data_folder|opt_class|train_csv):", yaml_text, flags=re.MULTILINE)


@pytest.mark.parametrize("chunk,left", [(16, 4), (8, 2)])
def test_stock_speechbrain_equals_our_stock_front_end_streaming(exported, random_model_folder, files, chunk, left):
    stock = run_stock(exported, chunk, left, files)
    assert stock["streamasr_imported"] is False
    model = load_model(random_model_folder)
    ours = []
    for path in files:
        import speechbrain as sb

        state, _ = StreamingRecognizer(model, DynChunkTrainConfig(chunk, left), frontend="stock").transcribe(
            sb.dataio.dataio.read_audio(str(path))
        )
        ours.append(state.texts[0])
    assert [s.strip() for s in stock["single"]] == [o.strip() for o in ours]
    assert all(len(o.strip()) >= 20 for o in ours)  # not vacuous: many tokens are emitted


def test_stock_batch_of_streams_matches_the_same_streams_one_at_a_time(exported, files, tmp_path):
    import soundfile

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


def test_averaging_the_two_best_checkpoints(tiny_model_folder, tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    from streamasr.export import select_checkpoints

    out = export(tiny_model_folder, tmp_path / "avg", average=2, example_audio=None)
    with open(tiny_model_folder / "hyperparams.yaml") as handle:
        hparams = load_hyperpyyaml(handle)
    first, second = select_checkpoints(tiny_model_folder, hparams, 2)
    a = torch.load(first.paramfiles["model"])
    b = torch.load(second.paramfiles["model"])
    averaged = torch.load(out / "model.ckpt")
    key = next(k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k]))
    torch.testing.assert_close(averaged[key], (a[key] + b[key]) / 2)
    assert json.loads((out / "export.json").read_text())["valid_wer"][0] <= \
        json.loads((out / "export.json").read_text())["valid_wer"][1]
    with pytest.raises(ExportError, match="--average 5 asks for more checkpoints than .* holds \\(2\\)"):
        export(tiny_model_folder, tmp_path / "too_many", average=5)
    assert not (tmp_path / "too_many").exists()


def test_bad_folders_are_named(exported, random_model_folder, tmp_path):
    with pytest.raises(ExportError, match="already exists"):
        export(random_model_folder, exported)
    with pytest.raises(ExportError, match="is not a training output folder"):
        export(tmp_path, tmp_path / "x")

    broken = tmp_path / "broken"
    shutil.copytree(exported, broken)
    (broken / "normalizer.ckpt").unlink()
    with pytest.raises(ExportError, match="is missing normalizer.ckpt"):
        check_model_folder(broken)

    mismatched = tmp_path / "mismatched"
    shutil.copytree(exported, mismatched)
    yaml_path = mismatched / "hyperparams.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("n_neurons: 40", "n_neurons: 41", 1))
    with pytest.raises(ExportError, match="model.ckpt does not match .*hyperparams.yaml"):
        check_model_folder(mismatched)


def test_push_without_token_fails_clearly_and_keeps_the_folder(exported, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)  # no cached login
    before = sorted(p.name for p in exported.iterdir())
    with pytest.raises(ExportError, match="no Hugging Face token: set HF_TOKEN"):
        push_to_hub(exported, "someone/model")
    # A token but no network (nothing listens on port 9).
    with pytest.raises(ExportError, match="upload of .* to someone/model failed: .*local folder is complete"):
        push_to_hub(exported, "someone/model", token="hf_invalid", endpoint="http://127.0.0.1:9")
    assert sorted(p.name for p in exported.iterdir()) == before
    check_model_folder(exported)


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
