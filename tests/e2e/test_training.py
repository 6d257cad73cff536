"""End-to-end training on a tiny generated corpus: loss goes down, checkpoints are
written and survive kill -9, the full-size YAML trains a step, bad input stops early."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.common import (
    FULL_YAML,
    REPO,
    SMALL_YAML,
    TINY_MODEL_OVERRIDES,
    failure_report,
    run_train,
    train_log_epochs,
)
from streamasr.cpu import CPU_BF16_LSTM_ENV, cpu_bf16_lstm_supported


def train_losses(output: Path) -> list[float]:
    losses = []
    for line in (output / "train_log.txt").read_text().splitlines():
        if line.startswith("epoch:"):
            losses.append(float(line.split("train loss:")[1].split()[0]))
    return losses


def checkpoints(output: Path) -> list[Path]:
    return sorted((output / "save").glob("CKPT+*/CKPT.yaml"))


def test_a_few_epochs_lower_the_loss_and_write_checkpoints_and_test_wer(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    result = run_train(SMALL_YAML, tiny_corpus, out, *TINY_MODEL_OVERRIDES, "--number_of_epochs=4")
    assert result.returncode == 0, result.stderr[-3000:]
    losses = train_losses(out)
    assert len(losses) == 4
    assert losses[-1] < losses[0] * 0.8, losses
    assert checkpoints(out), "no checkpoint written"
    # the built-in corpus's three test sets, each scored into its own file
    for name in ("test_voices", "test_text", "test_synth"):
        wer = (out / f"wer_{name}.txt").read_text()
        assert "%WER" in wer and "%CER" in wer
    assert not (out / "wer_test.txt").exists()


def test_killed_run_resumes_from_its_last_checkpoint_without_losing_epochs(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    epochs = 6
    cmd = [sys.executable, str(REPO / "train.py"), str(SMALL_YAML), f"--data_folder={tiny_corpus}",
           f"--output_folder={out}", *TINY_MODEL_OVERRIDES, f"--number_of_epochs={epochs}"]
    process = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not checkpoints(out) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"
    done_before = train_log_epochs(out)
    assert 1 <= len(done_before) < epochs

    result = run_train(SMALL_YAML, tiny_corpus, out, *TINY_MODEL_OVERRIDES, f"--number_of_epochs={epochs}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert train_log_epochs(out) == list(range(1, epochs + 1))
    assert "Loading a checkpoint from" in (out / "log.txt").read_text()


# On every CPU, both branches of the bf16 prediction network: as detected on this machine
# (native bf16 LSTM on AVX-512 CPUs, fp32 LSTM on AVX2-only ones), and forced to the
# AVX2 branch (oneDNN capped at AVX2, detection overridden) whatever this machine is.
@pytest.mark.parametrize("cpu", ["detected", "avx2"])
def test_full_size_yaml_builds_and_trains_one_step_on_cpu(tiny_corpus, tmp_path, cpu):
    out = tmp_path / "full"
    env = {CPU_BF16_LSTM_ENV: "0", "ONEDNN_MAX_CPU_ISA": "AVX2"} if cpu == "avx2" else {}
    # Full architecture (12 x 512, 8 heads, d_ffn 2048, augmentation on); only the
    # token inventory is shrunk because 24 sentences cannot train 1000 BPE units.
    result = run_train(
        FULL_YAML, tiny_corpus, out, "--output_neurons=40", "--number_of_epochs=1",
        # 2 batches = 1 update (grad_accumulation_factor 2); training in the YAML's bf16
        # autocast, evaluation in fp32 (bf16 matmuls are slow on most CPUs)
        "--debug", "--debug_batches=2", "--eval_precision=fp32", "--train_dataloader_opts={num_workers: 0}",
        "--dynamic_batch_sampler_train={max_batch_length: 8, num_buckets: 2, shuffle: True, batch_ordering: random}",
        timeout=900, env=env,
    )
    assert result.returncode == 0, failure_report(result)
    log = (out / "log.txt").read_text()
    millions = float(re.search(r"Total Number of Trainable Parameters: ([\d.]+)M", log).group(1))
    assert 70 < millions < 90, millions  # the ~80M-parameter reference size
    train_log = (out / "train_log.txt").read_text()
    assert "valid WER" in train_log and "steps: 1 " in train_log, train_log
    assert "Using training precision: `--precision=bf16`" in log
    fp32_lstm = "the prediction network (LSTM) runs in fp32" in log
    assert fp32_lstm == (cpu == "avx2" or not cpu_bf16_lstm_supported()), log[-2000:]


def test_unknown_override_stops_before_any_work(tiny_corpus, tmp_path):
    result = run_train(SMALL_YAML, tiny_corpus, tmp_path / "x", "--number_of_epoch=2")
    assert result.returncode != 0
    assert "unknown override(s) --number_of_epoch (did you mean --number_of_epochs?)" in result.stderr
    assert not (tmp_path / "x").exists()


def test_bad_manifest_stops_before_training(tiny_corpus, tmp_path):
    bad = tmp_path / "train.csv"
    lines = (tiny_corpus / "train.csv").read_text().splitlines()
    lines[3] = lines[3].replace(".wav", "-gone.wav")
    bad.write_text("\n".join(lines) + "\n")
    result = run_train(SMALL_YAML, tiny_corpus, tmp_path / "x", *TINY_MODEL_OVERRIDES, f"--train_csv={bad}")
    assert result.returncode != 0
    assert "train.py: error:" in result.stderr
    assert "row 3" in result.stderr and "-gone.wav does not exist" in result.stderr
    assert not (tmp_path / "x" / "save" / "tokenizer").exists()


def test_pruned_objective_trains_end_to_end_and_the_step_limit_override_is_honoured(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    result = run_train(SMALL_YAML, tiny_corpus, out, *TINY_MODEL_OVERRIDES, "--number_of_epochs=4",
                       "--transducer_loss=pruned", "--pruned_warmup_steps=4", "--optimizer_step_limit=6")
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [int(m) for m in re.findall(r"steps: (\d+)", (out / "train_log.txt").read_text())]
    assert steps and steps[-1] == 6 and all(s <= 6 for s in steps), steps
    # the run option also sets the YAML key that the LR schedule's total_steps uses
    assert "optimizer_step_limit: 6\n" in (out / "hyperparams.yaml").read_text()
    rates = [float(m) for m in re.findall(r"lr: ([-\d.e+]+)", (out / "train_log.txt").read_text())]
    assert rates and min(rates) >= 0, rates
    assert "%WER" in (out / "wer_test_voices.txt").read_text()
