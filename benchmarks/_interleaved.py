"""Side-by-side timing shared by the benchmarks: variants run in turn within each
round, so that machine noise (other processes, frequency changes) hits all of them
alike, and the reported figure is the median over rounds after the warm-up."""

from __future__ import annotations

import statistics
from typing import Callable, Sequence


def interleaved_medians(variants: Sequence[tuple[str, Callable[[int], float]]], repeats: int,
                        warmup: int = 1) -> dict[str, float]:
    """Run ``warmup + repeats`` rounds; in each, call every variant with the round index
    (each returns the seconds it measured). Returns the median seconds per label over
    the rounds after the warm-up."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times: dict[str, list[float]] = {label: [] for label, _ in variants}
    for index in range(warmup + repeats):
        for label, run in variants:
            seconds = run(index)
            if index >= warmup:
                times[label].append(seconds)
    return {label: statistics.median(values) for label, values in times.items()}
