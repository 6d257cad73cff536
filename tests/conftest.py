"""Shared fixtures: a tiny espeak-ng corpus and tiny-model overrides for the recipes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL_YAML = REPO / "hparams" / "conformer_transducer_small.yaml"
FULL_YAML = REPO / "hparams" / "conformer_transducer.yaml"

TINY_CORPUS = dict(
    train_utterances=24,
    valid_utterances=4,
    test_utterances=4,
    valid_speakers=3,
    test_speakers=3,
    seed=7,
)

# A model small enough to train a few steps in seconds on CPU.
TINY_MODEL_OVERRIDES = [
    "--d_model=32",
    "--nhead=2",
    "--num_encoder_layers=1",
    "--d_ffn=64",
    "--dec_dim=32",
    "--joint_dim=32",
    "--output_neurons=40",
    "--lr=0.003",
    "--warmup_steps=5",
    "--ckpt_interval_minutes=0",
]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    from streamasr.data.synthetic import CorpusConfig, build_corpus

    folder = tmp_path_factory.mktemp("tiny_corpus")
    build_corpus(folder, CorpusConfig(**TINY_CORPUS), progress=False)
    return folder


def audio_paths(corpus: Path, split: str = "test") -> list[str]:
    """Audio file paths of a corpus split, in manifest order."""
    from streamasr.data.manifest import read_manifest, resolve_path

    return [resolve_path(row["wav"], str(corpus)) for row in read_manifest(corpus / f"{split}.csv")]


def run_train(yaml: Path, corpus: Path, output: Path, *extra: str, timeout: int = 600,
              env: dict | None = None):
    """Run train.py in a subprocess (``env``: extra environment variables); returns the
    CompletedProcess."""
    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        str(yaml),
        f"--data_folder={corpus}",
        f"--output_folder={output}",
        *extra,
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def failure_report(result: subprocess.CompletedProcess, lines: int = 80) -> str:
    """What a failed subprocess said, for an assertion message: its last traceback when
    there is one (SpeechBrain logs it to stdout, so both streams are searched), else the
    end of stderr without SentencePiece's trainer log (which otherwise fills the tail and
    hides the error)."""
    stderr = result.stderr
    for stream in (result.stderr, result.stdout or ""):
        if "Traceback (most recent call last)" in stream:
            stderr = stream[stream.rindex("Traceback (most recent call last)"):]
            break
    kept, in_spec = [], False
    for line in stderr.splitlines():
        if re.match(r"^\w+\.cc\(\d+\) LOG", line) or re.match(r"^(trainer|normalizer|denormalizer)_spec \{", line):
            in_spec = line.rstrip().endswith("{")
            continue
        if in_spec:
            in_spec = line.strip() != "}"
            continue
        kept.append(line)
    return f"exit status {result.returncode}\n" + "\n".join(kept[-lines:])


def train_log_epochs(output: Path) -> list[int]:
    """Epoch numbers logged in train_log.txt, in order."""
    log = output / "train_log.txt"
    if not log.exists():
        return []
    epochs = []
    for line in log.read_text().splitlines():
        if line.startswith("epoch:"):
            epochs.append(int(line.split(",")[0].split(":")[1]))
    return epochs


@pytest.fixture(scope="session")
def tiny_model_folder(tiny_corpus, tmp_path_factory) -> Path:
    """A train.py output folder of a tiny model trained for a few epochs. (Untrained
    weights are a poor probe: greedy search degenerates into repeating one token at
    near-tied scores, where float noise decides.)"""
    out = tmp_path_factory.mktemp("tiny_model") / "run"
    result = run_train(SMALL_YAML, tiny_corpus, out, *TINY_MODEL_OVERRIDES, "--number_of_epochs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def random_model_folder(tiny_corpus, tmp_path_factory) -> Path:
    """A train.py output folder whose weights stay at their random initialisation
    (lr ~ 0): greedy search emits many tokens, so equality checks are not vacuous."""
    out = tmp_path_factory.mktemp("random_model") / "run"
    overrides = [o for o in TINY_MODEL_OVERRIDES if not o.startswith("--lr=")]
    result = run_train(SMALL_YAML, tiny_corpus, out, *overrides, "--lr=0.0000001", "--number_of_epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    return out
