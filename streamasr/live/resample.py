"""Band-limited resampling of a live stream, block by block."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch
import torchaudio.functional as F


class StreamingResampler:
    """Band-limited resampling of a stream, block by block, equal (to ~1e-6) to
    resampling the whole signal at once with ``torchaudio.functional.resample``.

    Works in units of ``orig / gcd`` input samples (which map to ``new / gcd`` output
    samples exactly): each call resamples the new whole units plus ``context`` units on
    both sides and keeps the interior, so the filter never sees a block edge.
    """

    def __init__(self, orig_rate: int, new_rate: int, context_units: Optional[int] = None):
        self.orig, self.new = int(orig_rate), int(new_rate)
        divisor = math.gcd(self.orig, self.new)
        self.in_unit, self.out_unit = self.orig // divisor, self.new // divisor
        # torchaudio's sinc filter spans ~6 zero crossings of the lower rate on each side.
        reach = math.ceil(6 * self.orig / min(self.orig, self.new)) + 1
        self.context = context_units or max(1, math.ceil(reach / self.in_unit))
        self.pending = np.zeros(0, dtype=np.float32)  # input not yet resampled
        self.history = np.zeros(self.context * self.in_unit, dtype=np.float32)  # zeros = signal start
        self.started = False

    def _run(self, signal: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32))
        return F.resample(tensor, self.orig, self.new).numpy()

    def process(self, block: np.ndarray, final: bool = False) -> np.ndarray:
        if self.orig == self.new:
            return block.astype(np.float32, copy=False)
        self.pending = np.concatenate([self.pending, block.astype(np.float32, copy=False)])
        ctx = self.context * self.in_unit
        if final:
            units = math.ceil(len(self.pending) / self.in_unit)
            if units == 0:
                return np.zeros(0, dtype=np.float32)
            total_in = len(self.pending)
            padded = np.concatenate([self.pending, np.zeros(units * self.in_unit - total_in + ctx, np.float32)])
            window = np.concatenate([self.history, padded])
            out = self._run(window)[self.context * self.out_unit: (self.context + units) * self.out_unit]
            self.pending = np.zeros(0, dtype=np.float32)
            keep = math.ceil(total_in * self.new / self.orig)
            return out[:keep]
        # Whole units that have their right context available.
        units = len(self.pending) // self.in_unit - self.context
        if units <= 0:
            return np.zeros(0, dtype=np.float32)
        window = np.concatenate([self.history, self.pending[: (units + self.context) * self.in_unit]])
        out = self._run(window)[self.context * self.out_unit: (self.context + units) * self.out_unit]
        consumed = units * self.in_unit
        self.history = np.concatenate([self.history, self.pending[:consumed]])[-ctx:]
        self.pending = self.pending[consumed:]
        return out


def resample_whole(signal: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Reference: the whole signal resampled at once (what the streaming resampler equals)."""
    if orig == new:
        return signal
    return F.resample(torch.from_numpy(signal.astype(np.float32)), orig, new).numpy()
