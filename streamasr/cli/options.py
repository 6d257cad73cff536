"""One validation layer for the command line's values.

Every numeric option is parsed by one of the types below, so a value out of range is
an argparse error (one line, exit 2) before any model is loaded, and no value is ever
replaced by a default behind the user's back (``--chunk-ms 0`` is an error, not
640 ms). Checks that involve two options (left context x chunk size, ``--beam``
without beam search) are in ``check_args``, which runs right after parsing.
Light by design: nothing here imports torch.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Callable, Optional

from streamasr.errors import ConfigError
from streamasr.units import (
    DEFAULT_STREAM_CHUNK_MS,
    MAX_CHUNK_MS,
    MAX_LEFT_CONTEXT_MS,
    MAX_RIGHT_MS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    check_context,
    parse_left_context,
)

MAX_BEAM = 128  # hypotheses per stream; a transducer beam beyond ~20 buys nothing and costs memory
MAX_THREADS = 1024
MAX_CHANNELS = 64
MAX_BATCH = 4096  # the exported graphs' batch dimension is traced up to this
DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?|mps|xpu(:\d+)?)$")


class _NotGiven:
    """The default of an option whose every value means something (``--left-chunks``:
    None is 'unlimited'), so that "not given" stays distinguishable."""

    def __repr__(self) -> str:
        return "the model's default"


NOT_GIVEN = _NotGiven()


def whole(low: Optional[int] = None, high: Optional[int] = None, what: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number within ``low..high`` (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range: expected {_range(low, high)}{what}")
        return value

    parse.__name__ = "whole number"
    return parse


def number(low: Optional[float] = None, high: Optional[float] = None, what: str = "",
           low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number within ``low..high`` (``low_open``: > low)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        below = value <= low if (low is not None and low_open) else (low is not None and value < low)
        if below or (high is not None and value > high):
            expected = (f"> {low:g}" + (f" and <= {high:g}" if high is not None else "")) if low_open \
                else _range(low, high)
            raise argparse.ArgumentTypeError(f"{value:g} is out of range: expected {expected}{what}")
        return value

    parse.__name__ = "number"
    return parse


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f">= {low:g}"
    return f"<= {high:g}"


def left_chunks(text: str) -> Optional[int]:
    """An argparse type: a left context in chunks, or ``unlimited``."""
    try:
        return parse_left_context(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def device(text: str) -> str:
    """An argparse type: a torch device name (whether it exists is checked when torch is
    loaded, ``streamasr.cli.common.checked_device``)."""
    if not DEVICE_PATTERN.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: expected cpu, cuda, cuda:N, mps or xpu")
    return text


def listed(item: Callable[[str], object], also: tuple[str, ...] = ()) -> Callable[[str], str]:
    """An argparse type: comma-separated values, each valid for ``item`` (or one of
    ``also``, such as ``unlimited``); the text is kept for the grid to parse."""

    def parse(text: str) -> str:
        values = [value.strip() for value in text.split(",") if value.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} holds no value")
        for value in values:
            if value.lower() not in also:
                item(value)
        return text

    parse.__name__ = "comma-separated list"
    return parse


# The types of the options many commands share, each with its bounds.
CHUNK_MS = number(0, MAX_CHUNK_MS, " ms (a multiple of the encoder frame, 40 ms)", low_open=True)
RIGHT_MS = number(0, MAX_RIGHT_MS, " ms (a multiple of the encoder frame, 40 ms)")
BEAM = whole(1, MAX_BEAM, " hypotheses")
THREADS = whole(1, MAX_THREADS, " threads")
RATE = whole(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, " Hz")
CHANNELS = whole(1, MAX_CHANNELS, " channels")
PORT = whole(0, 65535, " (a TCP port; 0 = any free port)")
POSITIVE = whole(1)
COUNT = whole(0)
SECONDS = number(0, None, " seconds", low_open=True)
SHARE = number(0.0, 1.0)
CHUNK_MS_LIST = listed(CHUNK_MS)
RIGHT_MS_LIST = listed(RIGHT_MS)
LEFT_CHUNKS_LIST = listed(left_chunks)
LEFT_MS_LIST = listed(number(0, MAX_LEFT_CONTEXT_MS, " ms"), also=("unlimited",))
CHUNK_FRAMES_LIST = listed(whole(1, 4096, " encoder frames"))


def check_args(args: argparse.Namespace) -> None:
    """Checks that involve more than one option; ``ConfigError`` (one line) before any
    model is loaded."""
    beam_only = [name for name in ("beam", "lm", "hotwords") if getattr(args, name, None) is not None]
    if getattr(args, "decoding", "beam") != "beam" and beam_only:
        first = beam_only[0]
        what = {"beam": "--beam sets the hypotheses of beam search", "lm": "--lm is fused in beam search only",
                "hotwords": "--hotwords are applied in beam search only"}[first]
        raise ConfigError(f"{what}: add --decoding beam")
    left = getattr(args, "left_chunks", NOT_GIVEN)
    if hasattr(args, "chunk_ms") and not isinstance(args.chunk_ms, str) and isinstance(left, int):
        check_context(args.chunk_ms if args.chunk_ms is not None else DEFAULT_STREAM_CHUNK_MS, left)


__all__ = ["NOT_GIVEN", "BEAM", "CHANNELS", "CHUNK_MS", "PORT", "RATE", "RIGHT_MS", "THREADS", "check_args", "device",
           "left_chunks", "number", "whole"]
