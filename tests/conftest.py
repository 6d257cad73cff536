"""Session fixtures (a tiny espeak-ng corpus, tiny trained and untrained model folders)
and the test tiers: everything under ``tests/e2e/`` is marked ``slow``, so
``pytest -m "not slow"`` runs the unit tier alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.common import (
    SMALL_YAML,
    TINY_CORPUS,
    TINY_MODEL_OVERRIDES,
    failure_report,
    run_train,
)
from streamasr.data.synthetic import CorpusConfig, build_corpus

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
    """A train.py output folder of a tiny model trained for a few epochs. (Untrained
    weights are a poor probe: greedy search degenerates into repeating one token at
    near-tied scores, where float noise decides.)"""
    out = tmp_path_factory.mktemp("tiny_model") / "run"
    result = run_train(SMALL_YAML, tiny_corpus, out, *TINY_MODEL_OVERRIDES, "--number_of_epochs=3")
    assert result.returncode == 0, failure_report(result)
    return out


@pytest.fixture(scope="session")
def random_model_folder(tiny_corpus, tmp_path_factory) -> Path:
    """A train.py output folder whose weights stay at their random initialisation
    (lr ~ 0): greedy search emits many tokens, so equality checks are not vacuous."""
    out = tmp_path_factory.mktemp("random_model") / "run"
    overrides = [o for o in TINY_MODEL_OVERRIDES if not o.startswith("--lr=")]
    result = run_train(SMALL_YAML, tiny_corpus, out, *overrides, "--lr=0.0000001", "--number_of_epochs=1")
    assert result.returncode == 0, failure_report(result)
    return out
