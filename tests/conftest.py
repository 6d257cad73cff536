"""Session fixtures (a tiny espeak-ng corpus, a tiny trained model folder (train.py:
end-to-end tier only), model folders of random weights built without a training run
(helpers.models), the random model loaded and exported, test audio)
and the test tiers: everything under ``tests/e2e/`` is marked ``slow``, so
``pytest -m "not slow"`` runs the unit tier alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.common import (
    KALDI_YAML,
    SMALL_YAML,
    TINY_CORPUS,
    TINY_MODEL_OVERRIDES,
    audio_paths,
    failure_report,
    run_train,
)
from helpers.models import build_model_folder
from streamasr.data.synthetic import CorpusConfig, build_corpus
from streamasr.evaluate import load_utterances
from streamasr.export import export
from streamasr.model import AsrModel, load_model

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_corpus")
    build_corpus(folder, CorpusConfig(**TINY_CORPUS), progress=False)
    return folder


@pytest.fixture(scope="session")
def tiny_model_folder(tiny_corpus, tmp_path_factory) -> Path:
    """A train.py output folder of a tiny model trained for a few epochs (train.py runs:
    end-to-end tier only, tests/unit/core/test_tiers.py). (Untrained weights are a poor
    probe: greedy search degenerates into repeating one token at near-tied scores, where
    float noise decides.)"""
    out = tmp_path_factory.mktemp("tiny_model") / "run"
    result = run_train(SMALL_YAML, tiny_corpus, out, *TINY_MODEL_OVERRIDES, "--number_of_epochs=3")
    assert result.returncode == 0, failure_report(result)
    return out


@pytest.fixture(scope="session")
def random_model_folder(tiny_corpus, tmp_path_factory) -> Path:
    """A train.py output folder of the tiny model's recipe whose weights are at their
    random initialisation, built without a training run (helpers.models): greedy search
    emits many tokens, so equality checks are not vacuous."""
    out = tmp_path_factory.mktemp("random_model") / "run"
    return build_model_folder(SMALL_YAML, tiny_corpus, out, *TINY_MODEL_OVERRIDES, "--number_of_epochs=1")


@pytest.fixture(scope="session")
def kaldi_model_folder(tiny_corpus, tmp_path_factory) -> Path:
    """The random model's recipe with the kaldi-native-fbank front end
    (hparams/frontend_kaldi.yaml), weights at their random initialisation (built
    without a training run, helpers.models)."""
    out = tmp_path_factory.mktemp("kaldi_model") / "run"
    return build_model_folder(SMALL_YAML, tiny_corpus, out, str(KALDI_YAML), *TINY_MODEL_OVERRIDES,
                              "--number_of_epochs=1")


@pytest.fixture(scope="session")
def kaldi_model(kaldi_model_folder) -> AsrModel:
    """The kaldi-front-end random model with its output layer scaled x30, so that
    greedy decisions have wide margins (random weights otherwise tie often, and float
    differences between runtimes would decide)."""
    torch.set_num_threads(1)
    loaded = load_model(kaldi_model_folder)
    with torch.no_grad():
        for parameter in loaded.joiner.classifier.parameters():
            parameter.mul_(30.0)
    return loaded


@pytest.fixture(scope="session")
def model(random_model_folder) -> AsrModel:
    """The random-weights model, loaded (1 thread: the tests compare exact results)."""
    torch.set_num_threads(1)
    return load_model(random_model_folder)


@pytest.fixture(scope="session")
def wavs(tiny_corpus) -> list[str]:
    """The tiny corpus's test files."""
    return audio_paths(tiny_corpus)


@pytest.fixture(scope="session")
def files(tiny_corpus) -> list[str]:
    """Three test files."""
    return audio_paths(tiny_corpus)[:3]


@pytest.fixture(scope="session")
def utterances(tiny_corpus) -> list:
    """Test and valid utterances of the tiny corpus, loaded (shortest first per split)."""
    return load_utterances(tiny_corpus / "test_voices.csv", None, None) + load_utterances(tiny_corpus / "valid.csv", None, None)


@pytest.fixture(scope="session")
def exported(random_model_folder, tmp_path_factory) -> Path:
    """The random model exported for stock SpeechBrain (random weights: greedy search
    emits many tokens, so equality checks are not vacuous)."""
    return export(random_model_folder, tmp_path_factory.mktemp("export") / "model", average=1)


@pytest.fixture(scope="session")
def onnx_folder(model, tmp_path_factory) -> Path:
    """The random model exported for onnxruntime at 320 ms chunks, 2 left chunks
    (verified against PyTorch); read-only: a test that alters it works on a copy."""
    from streamasr.export.onnx import export_onnx

    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "cell", chunk_ms=320, left_chunks=2).folder
