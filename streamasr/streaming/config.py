"""Chunking configurations: SpeechBrain's ``DynChunkTrainConfig`` (chunk size in encoder
frames, left context in chunks, ``None`` = unlimited), built from what users give.

Chunk sizes reach users in milliseconds as well as frames (1 encoder frame = 40 ms with
the default front end); the checks live in ``streamasr.units``.
"""

from __future__ import annotations

from typing import Optional

from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.dct import with_right_frames
from streamasr.frontend import FrontEndGeometry
from streamasr.units import parse_left_context


def chunk_config(geometry: FrontEndGeometry, chunk_ms: float, left_chunks: Optional[int | str],
                 right_ms: float = 0) -> DynChunkTrainConfig:
    """The config of ``chunk_ms`` milliseconds (a multiple of the encoder frame),
    ``left_chunks`` chunks of left context (``None`` / ``"unlimited"`` = unlimited) and
    ``right_ms`` of look-ahead (``streamasr.dct``; 0 = SpeechBrain's own config);
    ``ConfigError`` for a value off the grid or negative."""
    config = DynChunkTrainConfig(geometry.frames_from_ms(chunk_ms), parse_left_context(left_chunks))
    return with_right_frames(config, geometry.right_frames_from_ms(right_ms))
