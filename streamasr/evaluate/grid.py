"""The evaluation grid: chunk sizes (ms or encoder frames) x left contexts (chunks,
milliseconds or unlimited) x look-ahead (ms), plus full context."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

from streamasr.errors import ConfigError
from streamasr.units import (
    DEFAULT_CHUNK_MS,
    DEFAULT_LEFT_CHUNKS,
    check_context,
    chunk_frames_from_count,
    chunk_frames_from_ms,
    parse_left_context,
    parse_left_ms,
    right_frames_from_ms,
)

__all__ = ["DEFAULT_CHUNK_MS", "DEFAULT_LEFT_CHUNKS", "Grid", "GridCell", "grid_cells", "parse_grid"]


@dataclasses.dataclass(frozen=True)
class GridCell:
    """One cell: ``chunk`` frames (None = full context), ``left`` chunks (None =
    unlimited), ``right`` look-ahead frames; ``left_ms`` when the left context was
    asked for as a duration (``--left-ms``: the same past for every chunk size, turned
    into whole chunks, rounded up)."""

    chunk: Optional[int]
    left: Optional[int]
    right: int = 0
    left_ms: Optional[float] = None


def parse_grid(
    chunk_values: Sequence[str], unit: str, left_values: Sequence[str], frame_ms: float,
    right_values: Sequence[str] = ("0",), left_unit: str = "chunks",
) -> tuple[list[int], list[Optional[float]], list[int]]:
    """Validate the grid; returns chunk sizes in encoder frames, left contexts (in
    chunks, or in ms with ``left_unit="ms"``; None = unlimited) and look-ahead in
    encoder frames. Raises ``ConfigError`` (a ``ValueError``) naming the bad value."""
    if unit == "ms":
        chunks = [chunk_frames_from_ms(value, frame_ms) for value in chunk_values]
    else:
        chunks = [chunk_frames_from_count(value) for value in chunk_values]
    if left_unit == "ms":
        lefts = [parse_left_ms(value) for value in left_values]
    else:
        lefts = [parse_left_context(value) for value in left_values]
    rights = [right_frames_from_ms(value, frame_ms) for value in right_values] or [0]
    if not chunks:
        raise ConfigError("no chunk size given")
    for chunk in chunks:  # the caches and masks are sized by left context x chunk
        for left in lefts:
            if left is not None:
                check_context(chunk * frame_ms, left if left_unit != "ms" else math.ceil(left / (chunk * frame_ms)))
    if len(set(rights)) != len(rights):
        raise ConfigError(f"look-ahead values repeat: {', '.join(map(str, right_values))}")
    return chunks, lefts or [None], rights


def grid_cells(chunk_frames: Sequence[int], lefts: Sequence[Optional[float]], rights: Sequence[int] = (0,),
               frame_ms: Optional[float] = None) -> list[GridCell]:
    """Full context first, then every (chunk, left, right) cell, left-major, then
    look-ahead. With ``frame_ms`` the lefts are durations in ms (``--left-ms``)."""
    cells = [GridCell(None, None)]
    for left in lefts:
        for right in rights:
            for chunk in chunk_frames:
                if frame_ms is None or left is None:
                    cells.append(GridCell(chunk, left, right))
                else:
                    chunks = math.ceil(left / (chunk * frame_ms) - 1e-9)
                    cells.append(GridCell(chunk, chunks, right, left_ms=left))
    return cells


@dataclasses.dataclass(frozen=True)
class Grid:
    """What ``streamasr evaluate`` sweeps, as the user wrote it (checked against a
    model's encoder frame by ``cells``): ``chunk_values`` in ``unit`` (``ms`` or
    ``frames``, encoder frames), ``left_values`` in ``left_unit`` (``chunks``, or ``ms``:
    the same past for every chunk size) or ``unlimited``, ``right_values`` look-ahead in
    ms. The defaults are evaluate's: 160 to 1280 ms x 2, 4 and unlimited left chunks, no
    look-ahead."""

    chunk_values: Sequence[str] = tuple(str(value) for value in DEFAULT_CHUNK_MS)
    unit: str = "ms"
    left_values: Sequence[str] = tuple("unlimited" if value is None else str(value) for value in DEFAULT_LEFT_CHUNKS)
    right_values: Sequence[str] = ("0",)
    left_unit: str = "chunks"

    def __post_init__(self) -> None:
        for name in ("chunk_values", "left_values", "right_values"):  # a list given stays hashable and unshared
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def cells(self, frame_ms: float) -> list[GridCell]:
        """Full context first, then every cell (``grid_cells``) for an encoder frame of
        ``frame_ms``; ``ConfigError`` naming a bad value (``parse_grid``)."""
        chunks, lefts, rights = parse_grid(self.chunk_values, self.unit, self.left_values, frame_ms,
                                           self.right_values, self.left_unit)
        return grid_cells(chunks, lefts, rights, frame_ms if self.left_unit == "ms" else None)
