"""Denormal floats on CPU: flush them to zero in every thread of the process.

Why: once a model is trained for a while, some activations, gradients and optimiser
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

import torch


def flush_denormals() -> bool:
    """Treat denormal floats as 0 in this thread and in every thread it creates from
    now on (call it before torch runs anything in parallel). Returns False where the
    CPU has no such mode (non-x86), True otherwise. Values below 1.2e-38 in magnitude
    become 0: far below anything a float32 model's output depends on."""
    return torch.set_flush_denormal(True)
