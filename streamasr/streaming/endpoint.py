"""Endpointing: when a live stream's current segment ends, with sherpa-onnx's three
rules and semantics (``sherpa-onnx/csrc/endpoint.h``), so that `streamasr serve`, the
``Transcriber`` and ``streamasr transcribe --endpoint`` segment a stream as its server
does.

A rule fires when the segment's trailing silence (encoder frames since its last
token, or since its start when it has none; greedy search ends every frame with a
blank) is at least ``min_trailing_silence``, the segment is at least
``min_utterance_length`` long, and, if ``must_contain_nonsilence``, something was
decoded in it. Defaults (sherpa-onnx's): rule 1, 2.4 s of silence whatever was
decoded; rule 2, 1.2 s of silence after speech; rule 3, a segment of 20 s.

At an endpoint the segment is final: the search state restarts (the prediction
network from blank), the next segment's text starts empty, timestamps stay relative
to the stream start; the encoder's state carries on (its left context is audio, not
text).
"""

from __future__ import annotations

import dataclasses

from streamasr.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class EndpointRule:
    must_contain_nonsilence: bool
    min_trailing_silence: float  # seconds
    min_utterance_length: float  # seconds

    def fires(self, segment_seconds: float, trailing_seconds: float) -> bool:
        contains_nonsilence = segment_seconds > trailing_seconds
        return ((contains_nonsilence or not self.must_contain_nonsilence)
                and trailing_seconds >= self.min_trailing_silence
                and segment_seconds >= self.min_utterance_length)


@dataclasses.dataclass(frozen=True)
class Endpointing:
    """The three rules (module docstring); ``rule_fired`` says which one fires."""

    rule1: EndpointRule = EndpointRule(False, 2.4, 0.0)
    rule2: EndpointRule = EndpointRule(True, 1.2, 0.0)
    rule3: EndpointRule = EndpointRule(False, 0.0, 20.0)

    def __post_init__(self):
        for name in ("rule1", "rule2", "rule3"):
            rule = getattr(self, name)
            if rule.min_trailing_silence < 0 or rule.min_utterance_length < 0:
                raise ConfigError(f"endpoint {name}: durations must be >= 0, got {rule}")
            if rule.min_trailing_silence == 0 and rule.min_utterance_length == 0:
                raise ConfigError(f"endpoint {name}: a rule with no silence and no length would end every chunk")

    def rule_fired(self, segment_frames: int, trailing_frames: int, frame_seconds: float) -> int:
        """1, 2 or 3 for the first rule that fires, 0 for none."""
        segment, trailing = segment_frames * frame_seconds, trailing_frames * frame_seconds
        for number, rule in enumerate((self.rule1, self.rule2, self.rule3), 1):
            if rule.fires(segment, trailing):
                return number
        return 0


__all__ = ["EndpointRule", "Endpointing"]
