"""Transcription events and their JSON-lines format (``streamasr transcribe --json``)."""

from __future__ import annotations

import dataclasses
import json
from typing import Optional


@dataclasses.dataclass
class Event:
    """One transcription event. ``kind`` is ``partial`` (new text of a chunk),
    ``segment`` (with endpointing: a segment ended, ``text`` its transcript, ``rule``
    the endpoint rule) or ``final`` (the whole transcript at end of input)."""

    kind: str
    text: str
    chunk: int = -1
    audio_ms: float = 0.0  # audio consumed by the recogniser when the event was made
    compute_ms: float = 0.0  # compute time of this chunk (partial) / of all chunks (final)
    tokens: list = dataclasses.field(default_factory=list)  # [{token, piece, start_ms, confidence}]
    rtf: Optional[float] = None  # final only: compute time / audio duration
    segment: int = 0  # the segment (endpointing) the event belongs to
    rule: int = 0  # segment events: the endpoint rule that ended it (1-3)
    nbest: list = dataclasses.field(default_factory=list)  # final with beam search: [{text, score}] best first

    def to_json(self) -> str:
        record = {"type": self.kind, "text": self.text}
        if self.kind == "partial":
            record.update(chunk=self.chunk, audio_ms=round(self.audio_ms, 1),
                          compute_ms=round(self.compute_ms, 2), tokens=self.tokens)
            if self.segment:
                record.update(segment=self.segment)
        elif self.kind == "segment":
            record.update(segment=self.segment, rule=self.rule, audio_ms=round(self.audio_ms, 1))
        else:
            record.update(audio_ms=round(self.audio_ms, 1), compute_ms=round(self.compute_ms, 1),
                          rtf=None if self.rtf is None else round(self.rtf, 4))
            if self.nbest:
                record.update(nbest=self.nbest)
        return json.dumps(record, ensure_ascii=False)
