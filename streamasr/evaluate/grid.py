"""The evaluation grid: chunk sizes (ms or encoder frames) x left contexts (chunks or
unlimited), plus full context."""

from __future__ import annotations

from typing import Optional, Sequence

from streamasr.errors import ConfigError
from streamasr.units import (
    DEFAULT_CHUNK_MS,
    DEFAULT_LEFT_CHUNKS,
    chunk_frames_from_count,
    chunk_frames_from_ms,
    parse_left_context,
)

__all__ = ["DEFAULT_CHUNK_MS", "DEFAULT_LEFT_CHUNKS", "grid_cells", "parse_grid"]


def parse_grid(
    chunk_values: Sequence[str], unit: str, left_values: Sequence[str], frame_ms: float
) -> tuple[list[int], list[Optional[int]]]:
    """Validate the grid; returns chunk sizes in encoder frames and left contexts in
    chunks (None = unlimited). Raises ``ConfigError`` (a ``ValueError``) naming the bad
    value."""
    if unit == "ms":
        chunks = [chunk_frames_from_ms(value, frame_ms) for value in chunk_values]
    else:
        chunks = [chunk_frames_from_count(value) for value in chunk_values]
    lefts = [parse_left_context(value) for value in left_values]
    if not chunks:
        raise ConfigError("no chunk size given")
    return chunks, lefts or [None]


def grid_cells(chunk_frames: Sequence[int], left_chunks: Sequence[Optional[int]]
               ) -> list[tuple[Optional[int], Optional[int]]]:
    """Full context first, then every (chunk, left) pair, left-major."""
    return [(None, None)] + [(c, l) for l in left_chunks for c in chunk_frames]
