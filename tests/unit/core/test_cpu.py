"""CPU quirks (streamasr/cpu.py): flush-to-zero for denormals must reach torch's worker
threads; under bf16 autocast the LSTM runs in fp32 where oneDNN has no bf16 LSTM."""


import subprocess
import sys

import pytest
import torch

from helpers.common import REPO

PROBE = """
import sys, torch
torch.set_num_threads(2)
if sys.argv[1] == "late":
    torch.ones(512, 512) @ torch.ones(512, 512)  # the worker threads exist from here on
{setup}
a = torch.full((512, 512), 1e-21)
print(int(((a @ a) != 0).sum()))  # products 1e-42 and sums 5e-40: denormals; blocks on both threads
"""


def run_probe(mode: str, setup: str) -> int:
    result = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup), mode],
                            capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


BF16_PROBE = """
import sys, torch, speechbrain.nnet.RNN as rnn
from streamasr.cpu import cpu_bf16_lstm_supported, run_lstm
torch.manual_seed(0)
lstm = rnn.LSTM(hidden_size=16, input_shape=[None, None, 8], num_layers=1)
x, h = torch.randn(2, 5, 8), (torch.randn(1, 2, 16), torch.randn(1, 2, 16))
reference, (h_ref, c_ref) = lstm(x, hx=h)
state = (h[0].bfloat16(), h[1].bfloat16()) if sys.argv[1] == "bf16-state" else h
with torch.autocast("cpu", dtype=torch.bfloat16):
    out, (h_out, c_out) = run_lstm(lstm, x, hx=state)
print(cpu_bf16_lstm_supported(), out.dtype, float((out.float() - reference).abs().max()))
"""


def run_bf16_probe(state: str, **env) -> list[str]:
    import os

    result = subprocess.run([sys.executable, "-c", BF16_PROBE, state], capture_output=True, text=True,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()


def test_flush_denormals_first_thing_covers_every_thread():
    # what train.py and the streamasr command do: the call comes before any parallel op
    setup = "from streamasr.cpu import flush_denormals\nassert flush_denormals()"
    assert run_probe("early", setup) == 0


def test_flush_after_the_pool_exists_misses_the_workers():
    """Why the call has to come first (and why torch.set_flush_denormal was not enough
    where the losses called it): the worker threads keep computing on denormals."""
    # the probe sets 2 threads itself, so this holds on any machine (1 core included)
    setup = "from streamasr.cpu import flush_denormals\nflush_denormals()"
    assert 0 < run_probe("late", setup) < 512 * 512


def test_train_py_and_the_cli_flush_first_when_run_as_programs():
    import re

    root = REPO
    train = (root / "train.py").read_text()
    entry = train[train.index('if __name__ == "__main__":'):]
    assert entry.index("flush_denormals()") < entry.index("main(sys.argv[1:])")
    cli = (root / "streamasr/cli/__init__.py").read_text()
    entry = cli[cli.index("def run("):]
    assert re.search(r"main\(before_command=_flush_denormals\)", entry)  # after parsing, before any command
    flush = cli[cli.index("def _flush_denormals("):cli.index("def run(")]
    assert "flush_denormals()" in flush
    assert "streamasr = streamasr.cli:run" in (root / "setup.cfg").read_text()


def test_without_bf16_lstm_kernels_the_lstm_runs_in_fp32_inside_bf16_autocast():
    # oneDNN capped at AVX2 (what an AVX2-only CPU has): detection must see it, and the
    # LSTM must give the fp32 result instead of oneDNN's "could not create a primitive"
    supported, dtype, difference = run_bf16_probe("bf16-state", ONEDNN_MAX_CPU_ISA="AVX2")
    assert supported == "False" and dtype == "torch.float32"
    # the initial state was rounded to bf16 by the caller; the LSTM itself ran in fp32
    assert float(difference) < 2e-2


def test_forced_fp32_branch_equals_the_fp32_lstm_on_any_cpu():
    supported, dtype, difference = run_bf16_probe("fp32-state", STREAMASR_CPU_BF16_LSTM="0")
    assert supported == "False" and dtype == "torch.float32"
    assert float(difference) == 0.0


def test_bf16_lstm_override_rejects_other_values(monkeypatch):
    import streamasr.cpu as cpu

    monkeypatch.setattr(cpu, "_cpu_bf16_lstm", None)
    monkeypatch.setenv(cpu.CPU_BF16_LSTM_ENV, "yes")
    with pytest.raises(ValueError, match="STREAMASR_CPU_BF16_LSTM='yes': expected 0 or 1"):
        cpu.cpu_bf16_lstm_supported()


def test_outside_cpu_bf16_autocast_the_lstm_is_left_alone(monkeypatch):
    import streamasr.cpu as cpu

    monkeypatch.setattr(cpu, "_cpu_bf16_lstm", False)
    assert not cpu.lstm_needs_fp32("cpu")  # no autocast
    with torch.autocast("cpu", dtype=torch.float16):
        assert not cpu.lstm_needs_fp32("cpu")  # another dtype
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cpu.lstm_needs_fp32("cpu")
        assert not cpu.lstm_needs_fp32("cuda")  # CUDA kernels have bf16 LSTMs


def test_precision_auto_is_bf16_only_where_it_is_native(monkeypatch):
    import streamasr.cpu as cpu

    flags = {"avx2 avx512f": "fp32", "avx2 avx512f avx512_bf16": "bf16", "avx2 amx_bf16 amx_tile": "bf16"}
    for line, expected in flags.items():
        monkeypatch.setattr(cpu, "cpu_has_native_bf16", lambda line=line: any(
            flag in line.split() for flag in cpu.NATIVE_BF16_CPU_FLAGS))
        assert cpu.resolve_precision("auto", "cpu") == expected, line
    assert cpu.resolve_precision("fp32", "cpu") == "fp32" and cpu.resolve_precision("bf16", "cpu") == "bf16"
    monkeypatch.setattr(cpu.torch.cuda, "is_available", lambda: False)
    assert cpu.resolve_precision("auto", "cuda") == "fp32"  # no usable CUDA device: no bf16


def test_native_bf16_is_read_from_the_cpu_flags():
    import streamasr.cpu as cpu

    flags = next(line for line in open("/proc/cpuinfo", encoding="utf-8") if line.startswith("flags")).split()
    assert cpu.cpu_has_native_bf16() == any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))
