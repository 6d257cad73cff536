"""Units and the checks that go with them: one home for each.

* ``SAMPLE_RATE``: every model, manifest and live stream works at 16 kHz.
* Chunk sizes: given in milliseconds (a positive multiple of the encoder frame, 40 ms
  with the default front end) or in encoder frames (a positive whole number).
* Left context: a whole number of chunks >= 0, or unlimited (``None``; spelt
  ``unlimited``, ``none``, ``inf`` or ``-1`` on command lines).
"""

from __future__ import annotations

from typing import Optional

from streamasr.errors import ConfigError

SAMPLE_RATE = 16000  # Hz
UNLIMITED_SPELLINGS = ("unlimited", "none", "inf", "-1")
# The default evaluation grid (`streamasr evaluate`): chunk sizes in ms, left contexts in chunks.
DEFAULT_CHUNK_MS = (160, 320, 640, 960, 1280)
DEFAULT_LEFT_CHUNKS = (2, 4, None)
# The one cell that streams when none is asked (transcribe, serve, export-onnx, check-sherpa).
DEFAULT_STREAM_CHUNK_MS = 640.0
DEFAULT_STREAM_LEFT_CHUNKS = 4
DEFAULT_BEAM = 4  # hypotheses per stream in beam search
# Upper bounds where memory grows with the value (attention masks and caches are sized by
# the chunk and its left context): far beyond any streaming use, far below an allocation
# that cannot succeed. A longer chunk is not streaming; decode in full context instead.
MAX_CHUNK_MS = 60_000.0
MAX_RIGHT_MS = 10_000.0
MAX_LEFT_CONTEXT_MS = 600_000.0  # left chunks x chunk size
# Sample rates accepted from PCM on stdin and the server's start message (resampled).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000


def chunk_frames_from_ms(chunk_ms: float | str, frame_ms: float) -> int:
    """Encoder frames in ``chunk_ms``; ``ConfigError`` unless it is a positive multiple
    of the encoder frame duration ``frame_ms``."""
    number = _number(chunk_ms, "chunk size")
    if number > MAX_CHUNK_MS:
        raise ConfigError(f"chunk size {number:g} ms is above the {MAX_CHUNK_MS:g} ms this toolkit streams (a longer "
                          "chunk is not streaming: decode in full context)")
    return _whole_frames(number, frame_ms, number <= 0, f"chunk size {number:g} ms is not a positive multiple")


def right_frames_from_ms(right_ms: float | str, frame_ms: float) -> int:
    """Look-ahead encoder frames in ``right_ms``; ``ConfigError`` unless it is 0 or a
    positive multiple of the encoder frame duration ``frame_ms``."""
    number = _number(right_ms, "look-ahead (right context)")
    if number > MAX_RIGHT_MS:
        raise ConfigError(f"look-ahead {number:g} ms is above the {MAX_RIGHT_MS:g} ms allowed")
    return _whole_frames(number, frame_ms, number < 0, f"look-ahead {number:g} ms is not 0 or a positive multiple")


def _whole_frames(number: float, frame_ms: float, out_of_range: bool, problem: str) -> int:
    """``number`` ms in encoder frames; ``ConfigError`` (``problem`` of the encoder
    frame) when out of range or off the frame grid."""
    frames = number / frame_ms
    if out_of_range or abs(frames - round(frames)) > 1e-6:
        raise ConfigError(f"{problem} of the encoder frame ({frame_ms:g} ms)")
    return int(round(frames))


def chunk_frames_from_count(frames: float | str) -> int:
    """A chunk size given in encoder frames; ``ConfigError`` unless a positive whole number."""
    number = _number(frames, "chunk size")
    if number <= 0 or number != int(number):
        raise ConfigError(f"chunk size {frames} frames is not a positive whole number")
    return int(number)


def parse_left_context(value: Optional[int | str]) -> Optional[int]:
    """Left context in chunks (``None`` = unlimited) from an int, None or a command-line
    string; ``ConfigError`` for anything else or a negative count."""
    if value is None or str(value).strip().lower() in UNLIMITED_SPELLINGS:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"left context {value!r} is not a whole number of chunks or 'unlimited'") from None
    if number < 0:
        raise ConfigError(f"left context {value} is negative; expected >= 0 chunks or 'unlimited'")
    return number


def parse_left_ms(value: float | str) -> Optional[float]:
    """A left context in milliseconds (``unlimited`` = None); ``ConfigError`` when negative
    or not a number."""
    if str(value).strip() == "unlimited":
        return None
    number = _number(value, "left context")
    if number < 0:
        raise ConfigError(f"left context {number:g} ms is negative")
    return number


def check_context(chunk_ms: float, left_chunks: Optional[int]) -> None:
    """``ConfigError`` when ``left_chunks`` chunks of ``chunk_ms`` exceed
    ``MAX_LEFT_CONTEXT_MS``: the caches and masks are sized by it."""
    if left_chunks is not None and left_chunks * chunk_ms > MAX_LEFT_CONTEXT_MS:
        raise ConfigError(f"left context {left_chunks} chunks x {chunk_ms:g} ms = {left_chunks * chunk_ms / 1000:g} s "
                          f"is above the {MAX_LEFT_CONTEXT_MS / 1000:g} s allowed (use fewer chunks, or "
                          "'unlimited' where the backend supports it)")


def left_context_label(left_chunks: Optional[int]) -> str:
    return "unlimited" if left_chunks is None else str(left_chunks)


def _number(value: float | str, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {value!r} is not a number") from None
