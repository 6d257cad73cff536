"""Units: chunk sizes in ms / frames and left contexts, checked in one place."""

from __future__ import annotations

import pytest

from streamasr.errors import ConfigError
from streamasr.units import chunk_frames_from_count, chunk_frames_from_ms, left_context_label, parse_left_context


def test_chunk_sizes_in_ms_must_be_multiples_of_the_frame():
    assert chunk_frames_from_ms(640, 40.0) == 16
    assert chunk_frames_from_ms("80", 40.0) == 2
    for bad, message in ((100, "chunk size 100 ms is not a positive multiple of the encoder frame (40 ms)"),
                         (0, "chunk size 0 ms is not"), (-40, "chunk size -40 ms is not"),
                         ("abc", "chunk size 'abc' is not a number")):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            chunk_frames_from_ms(bad, 40.0)


def test_chunk_sizes_in_frames_must_be_positive_whole_numbers():
    assert chunk_frames_from_count("8") == 8
    with pytest.raises(ConfigError, match="chunk size 2.5 frames is not a positive whole number"):
        chunk_frames_from_count("2.5")


@pytest.mark.parametrize("value, expected", [("4", 4), (0, 0), (None, None), ("unlimited", None),
                                             ("None", None), ("inf", None), ("-1", None)])
def test_left_context_spellings(value, expected):
    assert parse_left_context(value) == expected
    assert left_context_label(expected) == ("unlimited" if expected is None else str(expected))


def test_bad_left_contexts_are_named():
    with pytest.raises(ConfigError, match="left context -2 is negative"):
        parse_left_context("-2")
    with pytest.raises(ConfigError, match="left context 'x' is not a whole number"):
        parse_left_context("x")
