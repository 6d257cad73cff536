"""Export for stock SpeechBrain StreamingASR: the folder's files and model card,
averaging, bad folders, the hub upload failing clearly."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from helpers.common import SMALL_YAML, TINY_MODEL_OVERRIDES
from helpers.models import build_model_folder
from streamasr.export import ExportError, check_model_folder, export, push_to_hub


@pytest.fixture(scope="module")
def three_epoch_folder(tiny_corpus, tmp_path_factory):
    """A train.py output folder of three epochs whose weights differ from epoch to epoch
    (random weights, no training run: helpers.models), two checkpoints kept
    (``keep_checkpoints: 2``), as the tiny trained model's."""
    return build_model_folder(SMALL_YAML, tiny_corpus, tmp_path_factory.mktemp("three_epochs") / "run",
                              *TINY_MODEL_OVERRIDES, "--number_of_epochs=3", drift=0.01)


def test_folder_has_every_file_and_a_hub_model_card(exported):
    for name in ("hyperparams.yaml", "model.ckpt", "normalizer.ckpt", "tokenizer.ckpt", "README.md", "example.wav"):
        assert (exported / name).is_file(), name
    card = (exported / "README.md").read_text()
    front = card.split("---")[1]
    for line in ("language: en", "license: apache-2.0", "- automatic-speech-recognition", "- streaming",
                 "- speechbrain", "- wer"):
        assert line in front
    assert "StreamingASR.from_hparams" in card and "DynChunkTrainConfig(16, 4)" in card
    # the built-in corpus's three test sets: the primary one, then a table of all three
    assert re.search(r"Test WER \(test_voices, full context, greedy\): [\d.]+ %", card)
    for name in ("test_voices", "test_text", "test_synth"):
        assert re.search(rf"^\| {name} \| [a-z_ ,()-]+ \| [\d.]+ \| [\d.]+ \|$", card, flags=re.MULTILINE), name
    yaml_text = (exported / "hyperparams.yaml").read_text()
    assert not re.search(r"!\w+:streamasr", yaml_text)  # stock classes only
    assert "top_db" in yaml_text  # the streamable Fbank settings travel with the model
    assert not re.search(r"^(data_folder|opt_class|train_csv):", yaml_text, flags=re.MULTILINE)


def test_averaging_the_two_best_checkpoints(three_epoch_folder, tmp_path):
    from hyperpyyaml import load_hyperpyyaml

    from streamasr.export import select_checkpoints

    out = export(three_epoch_folder, tmp_path / "avg", average=2, example_audio=None)
    with open(three_epoch_folder / "hyperparams.yaml") as handle:
        hparams = load_hyperpyyaml(handle)
    first, second = select_checkpoints(three_epoch_folder, hparams, 2)
    a = torch.load(first.paramfiles["model"])
    b = torch.load(second.paramfiles["model"])
    averaged = torch.load(out / "model.ckpt")
    key = next(k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k]))
    torch.testing.assert_close(averaged[key], (a[key] + b[key]) / 2)
    assert json.loads((out / "export.json").read_text())["valid_wer"][0] <= \
        json.loads((out / "export.json").read_text())["valid_wer"][1]
    with pytest.raises(ExportError, match="--average 5 asks for more checkpoints than .* holds \\(2\\)"):
        export(three_epoch_folder, tmp_path / "too_many", average=5)
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


def test_primary_test_set_of_the_model_card(tmp_path):
    from streamasr.export.model_card import read_test_results

    def wer_file(name, wer):
        # as TransducerBrain writes it: the alignment summary, then CER and WER alone
        (tmp_path / f"wer_{name}.txt").write_text(f"%WER {wer:.2f} [ 1 / 10, 0 ins, 0 del, 1 sub ]\n"
                                                  f"%CER {wer / 2:.2f}\n%WER {wer:.2f}\n")

    assert read_test_results(tmp_path) == {}
    wer_file("test_synth", 40.0)
    wer_file("test_text", 30.0)
    assert read_test_results(tmp_path)["primary_test_set"] == "test_text"  # else: the built-in corpus's order
    wer_file("test_voices", 20.0)
    found = read_test_results(tmp_path)
    assert (found["primary_test_set"], found["test_wer"], found["test_cer"]) == ("test_voices", 20.0, 10.0)
    assert list(found["test_sets"]) == ["test_voices", "test_text", "test_synth"]
    assert found["test_sets"]["test_text"] == {"wer": 30.0, "cer": 15.0}
    wer_file("test", 10.0)  # a corpus with one test set: wer_test.txt
    assert read_test_results(tmp_path)["primary_test_set"] == "test"
