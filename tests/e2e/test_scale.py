"""Training at scale: the LibriSpeech recipe inside train.py, 2-process DDP on CPU,
the average of the N best checkpoints is what gets tested."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from helpers.common import (
    REPO,
    SMALL_YAML,
    TINY_CORPUS,
    TINY_MODEL_OVERRIDES,
    run_train,
    train_log_epochs,
)

LIBRISPEECH_YAML = REPO / "recipes" / "LibriSpeech" / "librispeech.yaml"


TINY_SPLITS = "--prepare_options={train_splits: [train-clean-100], valid_splits: [dev-clean], " \
              "test_splits: [test-clean, test-other]}"


def librispeech_from(corpus: Path, root: Path) -> Path:
    """The tiny synthetic corpus rewritten in LibriSpeech's official layout (FLAC files,
    one chapter per speaker, ``*.trans.txt``); its test set split into test-clean and
    test-other."""
    from streamasr.data.manifest import read_manifest, resolve_path

    layout = {"train": ["train-clean-100"], "valid": ["dev-clean"], "test_voices": ["test-clean", "test-other"]}
    speakers: dict[str, int] = {}
    for split, targets in layout.items():
        rows = read_manifest(corpus / f"{split}.csv")
        for index, row in enumerate(rows):
            target = targets[index * len(targets) // len(rows)]
            speaker = speakers.setdefault(row["spk_id"], 100 + len(speakers))
            folder = root / target / str(speaker) / "7"
            folder.mkdir(parents=True, exist_ok=True)
            utt_id = f"{speaker}-7-{index:04d}"
            audio, rate = sf.read(resolve_path(row["wav"], str(corpus)), dtype="float32")
            sf.write(folder / f"{utt_id}.flac", audio, rate)
            with open(folder / f"{speaker}-7.trans.txt", "a", encoding="utf-8") as handle:
                handle.write(f"{utt_id} {row['wrd']}\n")
    return root


@pytest.fixture(scope="module")
def tiny_librispeech(tiny_corpus, tmp_path_factory) -> Path:
    return librispeech_from(tiny_corpus, tmp_path_factory.mktemp("LibriSpeech"))


def test_librispeech_recipe_prepares_inside_train_py_and_scores_each_test_set(tiny_librispeech, tmp_path):
    out = tmp_path / "run"
    # A bad corpus stops train.py before any training work, naming the file.
    broken = tmp_path / "broken"
    subprocess.run(["cp", "-r", str(tiny_librispeech), str(broken)], check=True)
    gone = next(broken.glob("test-other/*/*/*.flac"))
    gone.unlink()
    result = run_train(SMALL_YAML, broken, tmp_path / "bad", LIBRISPEECH_YAML, TINY_SPLITS,
                       *TINY_MODEL_OVERRIDES, "--number_of_epochs=1")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"transcript line for {gone.stem} has no audio (expected {gone})" in result.stderr
    assert "--skip_bad" in result.stderr
    assert not (tmp_path / "bad" / "save" / "tokenizer").exists()
    # --skip_bad=True leaves it out and trains
    result = run_train(SMALL_YAML, broken, tmp_path / "skip", LIBRISPEECH_YAML, TINY_SPLITS,
                       *TINY_MODEL_OVERRIDES, "--number_of_epochs=1", "--skip_bad=True")
    assert result.returncode == 0, result.stderr[-3000:]
    assert gone.stem in (tmp_path / "skip" / "manifests" / "skipped_test-other.tsv").read_text()

    # The clean corpus: the recipe file's keys apply, the command line wins over them
    # (output_neurons 1000 in the recipe, 40 here), each test set is scored on its own.
    result = run_train(SMALL_YAML, tiny_librispeech, out, LIBRISPEECH_YAML, TINY_SPLITS,
                       *TINY_MODEL_OVERRIDES, "--number_of_epochs=1")
    assert result.returncode == 0, result.stderr[-3000:]
    manifests = out / "manifests"
    train_rows = TINY_CORPUS["train_utterances"] + TINY_CORPUS["human_utterances"] * len(TINY_CORPUS["human_train_speeds"])
    assert len((manifests / "train.csv").read_text().splitlines()) == 1 + train_rows
    assert (manifests / "test-clean.csv").exists() and (manifests / "test-other.csv").exists()
    for name in ("test-clean", "test-other"):
        assert "%WER" in (out / f"wer_{name}.txt").read_text()
    log = (out / "train_log.txt").read_text()
    assert "test set: test-clean" in log and "test set: test-other" in log
    saved = (out / "hyperparams.yaml").read_text()
    assert "prepare_corpus: librispeech" in saved and "output_neurons: 40" in saved


def test_two_process_ddp_on_cpu_trains_and_its_checkpoint_reloads(tiny_librispeech, tmp_path):
    """torchrun --nproc_per_node=2 (gloo): both ranks end with the same weights, only
    rank 0 prepares, logs and checkpoints, and the checkpoint reproduces the trained
    encoder's output in a single process."""
    sys.path.insert(0, str(REPO / "tests" / "helpers"))
    import socket

    from ddp_probe import encoder_output, fixed_input

    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           str(REPO / "tests" / "helpers" / "ddp_probe.py"), str(SMALL_YAML), str(LIBRISPEECH_YAML),
           f"--data_folder={tiny_librispeech}", f"--output_folder={out}", TINY_SPLITS,
           *TINY_MODEL_OVERRIDES, "--number_of_epochs=2", "--distributed_backend=gloo", "--device=cpu"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    probes = [torch.load(out / f"probe_rank{rank}.pt") for rank in (0, 1)]
    assert [p["world_size"] for p in probes] == [2, 2]
    assert probes[0]["steps"] > 0 and probes[0]["steps"] == probes[1]["steps"]
    assert probes[0]["param_sum"] == pytest.approx(probes[1]["param_sum"], rel=1e-6, abs=1e-6)
    assert probes[0]["param_abs_sum"] == pytest.approx(probes[1]["param_abs_sum"], rel=1e-6)
    torch.testing.assert_close(probes[0]["norm_mean"], probes[1]["norm_mean"])  # synced statistics
    assert train_log_epochs(out) == [1, 2]  # logged once, by rank 0
    assert (out / "manifests" / "train.csv").exists()

    from hyperpyyaml import load_hyperpyyaml

    with open(out / "hyperparams.yaml", encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle)
    checkpoint = hparams["checkpointer"].recover_if_possible(min_key="WER")
    assert checkpoint is not None
    single = encoder_output(hparams, fixed_input())
    torch.testing.assert_close(single, probes[0]["encoder_out"], atol=1e-5, rtol=1e-5)


def test_average_of_n_best_checkpoints_is_tested(tiny_corpus, tmp_path):
    sys.path.insert(0, str(REPO))
    from speechbrain.utils.checkpoints import average_checkpoints

    import train

    out = tmp_path / "avg"
    brain = train.main([str(SMALL_YAML), f"--data_folder={tiny_corpus}", f"--output_folder={out}",
                        *TINY_MODEL_OVERRIDES, "--number_of_epochs=3", "--keep_checkpoints=2",
                        "--average_n_best=2"])
    kept = brain.checkpointer.find_checkpoints(min_key="WER", max_num_checkpoints=2)
    assert len(kept) == 2 and brain.averaged_checkpoints == [c.path for c in kept]
    expected = average_checkpoints(kept, "model", parameter_loader=lambda p, **_: torch.load(p))
    tested = brain.hparams.model.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(tested[name], value)
    # and it is not simply the best checkpoint
    best = torch.load(kept[0].paramfiles["model"])
    assert any(not torch.equal(best[name], tested[name]) for name in best if best[name].is_floating_point())
