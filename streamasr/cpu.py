"""CPU quirks that change results or speed: denormal floats (flushed to zero in every
thread of the process) and bf16 autocast on CPUs without bf16 LSTM kernels (below).

Denormals: once a model is trained for a while, some activations, gradients and optimiser
moments fall below float32's smallest normal number (1.2e-38). x86 CPUs compute on
such denormals tens of times slower than on normal numbers: a 512 x 512 matrix
product with denormal inputs took 604 ms instead of 11 ms on 2 threads here, and the
demo's training steps got ~20 % slower from its fourth epoch on.

``torch.set_flush_denormal(True)`` sets the flush-to-zero / denormals-are-zero bits of
the *calling* thread only. New threads inherit them from the thread that creates them
(``pthread_create`` copies the floating-point environment), so the call must come
before torch creates its OpenMP worker threads, i.e. before the first parallel
operation of the process. Called later, the workers keep computing on denormals
(the same product: 420 ms). ``train.py`` and the ``streamasr`` command call
``flush_denormals`` first thing; on GPU it changes nothing (CUDA kernels are not
affected by the CPU flag).
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import torch

logger = logging.getLogger(__name__)


def flush_denormals() -> bool:
    """Treat denormal floats as 0 in this thread and in every thread it creates from
    now on (call it before torch runs anything in parallel). Returns False where the
    CPU has no such mode (non-x86), True otherwise. Values below 1.2e-38 in magnitude
    become 0: far below anything a float32 model's output depends on."""
    return torch.set_flush_denormal(True)


# ------------------------------------------------------------------ bf16 on CPUs without it
# Why: under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the full-size YAML's
# ``precision: bf16``) torch sends the LSTM to oneDNN's bf16 RNN primitive, which
# exists only on CPUs with AVX-512 (AVX512_CORE and up). On an AVX2-only CPU (the AMD
# EPYC machines here) the first training batch died with "could not create a primitive
# descriptor for the LSTM forward propagation primitive". Everything else in the model
# (linear, conv, attention) runs in bf16 on such CPUs through oneDNN's emulation, so
# only the prediction network is kept in fp32 there; on GPUs and on CPUs with bf16
# nothing changes.
CPU_BF16_LSTM_ENV = "STREAMASR_CPU_BF16_LSTM"
_cpu_bf16_lstm: Optional[bool] = None
_fallback_logged = False


def cpu_bf16_lstm_supported() -> bool:
    """Whether an LSTM can run under CPU bf16 autocast on this machine (cached).

    ``STREAMASR_CPU_BF16_LSTM=0`` / ``=1`` overrides the detection (tests force the
    fp32 branch with it). Otherwise: oneDNN's own bf16 check
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``, from the CPU's flags), confirmed
    by running a 4-unit LSTM under bf16 autocast once, because ``ONEDNN_MAX_CPU_ISA``
    (e.g. ``AVX2``) can cap oneDNN below what the flags say.
    """
    global _cpu_bf16_lstm
    if _cpu_bf16_lstm is None:
        forced = os.environ.get(CPU_BF16_LSTM_ENV, "").strip()
        if forced in ("0", "1"):
            _cpu_bf16_lstm = forced == "1"
        elif forced:
            raise ValueError(f"{CPU_BF16_LSTM_ENV}={forced!r}: expected 0 or 1 (or unset to detect)")
        else:
            _cpu_bf16_lstm = _onednn_bf16_flag() and _bf16_lstm_probe()
    return _cpu_bf16_lstm


def _onednn_bf16_flag() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def _bf16_lstm_probe() -> bool:
    lstm = torch.nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 4))
    except RuntimeError:
        return False
    return True


def lstm_needs_fp32(device_type: str) -> bool:
    """True inside a CPU bf16 autocast region on a CPU whose oneDNN has no bf16 LSTM."""
    return (
        device_type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and not cpu_bf16_lstm_supported()
    )


def run_lstm(lstm: torch.nn.Module, inputs: torch.Tensor, hx: Optional[tuple[torch.Tensor, torch.Tensor]] = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """``lstm(inputs, hx=hx)``, in fp32 (autocast off, inputs and state cast to float32)
    where the CPU cannot run it in bf16 (see ``lstm_needs_fp32``), as is otherwise.
    ``inputs`` ``[B, U, E]``; returns what the LSTM returns (output, (h, c))."""
    if not lstm_needs_fp32(inputs.device.type):
        return lstm(inputs, hx=hx)
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        logger.warning("bf16 autocast on a CPU without oneDNN bf16 LSTM kernels: the prediction "
                       "network (LSTM) runs in fp32, the rest of the model in bf16")
    if hx is not None:
        hx = tuple(h.float() for h in hx)
    with torch.autocast("cpu", enabled=False):
        return lstm(inputs.float(), hx=hx)


# ------------------------------------------------------------------ precision: auto
# Why: bf16 autocast roughly halves a training step of the small recipe on a CPU with
# native bf16 dot products (AVX512_BF16 or AMX: 2.2x with 8x subsampling, docs/training.md)
# but is emulated, and slower than fp32, on CPUs without them; the CI and laptop CPUs
# differ. ``precision: auto`` picks per machine.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products natively (Linux: its flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in NATIVE_BF16_CPU_FLAGS)
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``bf16`` on a CUDA device that supports it or a CPU with native bf16,
    ``fp32`` elsewhere; any other value is returned as it is."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        chosen = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    else:
        chosen = "bf16" if cpu_has_native_bf16() else "fp32"
    logger.info("precision: auto -> %s on %s", chosen, device)
    return chosen
