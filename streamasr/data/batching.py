"""Batching by total audio duration, with an optional shortest-first warm start.

``CurriculumBatchSampler`` is SpeechBrain's ``DynamicBatchSampler`` (batches filled up
to ``max_batch_length`` seconds) whose batches are visited shortest-first during the
first ``ascending_epochs`` epochs and in the configured order afterwards. On a CPU
budget, short utterances first let the encoder find its CTC alignments sooner (the
plateau where CTC ignores the audio is the bottleneck of small-scale training).
Batch order stays a pure function of (seed, epoch), so intra-epoch resumption replays
the same batches.
"""

from __future__ import annotations

from speechbrain.dataio.sampler import DynamicBatchSampler


class CurriculumBatchSampler(DynamicBatchSampler):
    """``DynamicBatchSampler`` plus ``ascending_epochs`` (epochs are 1-based; 0 = off)."""

    def __init__(self, *args, ascending_epochs: int = 0, **kwargs):
        self._ascending_epochs = ascending_epochs
        super().__init__(*args, **kwargs)

    def _permute_batches(self):
        if 0 < self._epoch <= self._ascending_epochs or (
            self._epoch == 0 and self._ascending_epochs > 0
        ):
            configured = self._batch_ordering
            self._batch_ordering = "ascending"
            try:
                super()._permute_batches()
            finally:
                self._batch_ordering = configured
        else:
            super()._permute_batches()
