"""Searches over a transducer's outputs: hypotheses and their carried state, greedy
search, batched modified beam search (``beam.py``) with token n-gram LM fusion
(``lm.py``) and hotwords (``hotwords.py``); ``Decoding`` says which."""

import dataclasses
import math
from typing import Optional

from streamasr.decoding.beam import Beam, BeamSearch, BeamState
from streamasr.decoding.greedy import GreedySearch
from streamasr.decoding.hotwords import ContextGraph, read_hotwords
from streamasr.decoding.hypothesis import GreedyState, Hypothesis
from streamasr.decoding.lm import NgramLM, load_lm, train_ngram
from streamasr.errors import ConfigError
from streamasr.modes import DECODINGS


@dataclasses.dataclass
class Decoding:
    """How to search: ``greedy`` or ``beam`` (``beam`` hypotheses, ``nbest`` reported at
    the end), with an optional token n-gram LM fused at ``lm_weight`` and a low-order
    LM subtracted at ``lodr_weight`` (LODR)."""

    kind: str = "greedy"
    beam: int = 4
    nbest: int = 1
    lm: Optional[NgramLM] = None
    lm_weight: float = 0.0
    lodr: Optional[NgramLM] = None
    lodr_weight: float = 0.0
    hotwords: Optional[ContextGraph] = None

    def check(self) -> "Decoding":
        check_decoding(self.kind, self.beam, self.nbest)
        from streamasr.errors import ConfigError

        if self.kind != "beam" and (self.lm is not None or self.lodr is not None):
            raise ConfigError("an LM is fused in beam search only: add --decoding beam")
        if self.kind != "beam" and self.hotwords is not None:
            raise ConfigError("hotwords are applied in beam search only: add --decoding beam")
        return self

    def build(self, decoder, joiner, blank_id: int, max_symbols_per_step: int = 5):
        self.check()
        if self.kind == "greedy":
            return GreedySearch(decoder, joiner, blank_id=blank_id, max_symbols_per_step=max_symbols_per_step)
        for name, value in (("lm_weight", self.lm_weight), ("lodr_weight", self.lodr_weight)):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        fusion = [(self.lm, self.lm_weight), (self.lodr, -self.lodr_weight)]
        return BeamSearch(decoder, joiner, blank_id=blank_id, beam_size=self.beam, fusion=fusion,
                          hotwords=self.hotwords)

    def label(self) -> str:
        if self.kind == "greedy":
            return "greedy"
        text = f"beam {self.beam}"
        if self.lm is not None and self.lm_weight:
            text += f", LM {self.lm.order}-gram x {self.lm_weight:g}"
        if self.lodr is not None and self.lodr_weight:
            text += f", LODR {self.lodr.order}-gram x {self.lodr_weight:g}"
        if self.hotwords is not None:
            text += f", {len(self.hotwords.phrases)} hotwords"
        return text


def check_decoding(decoding: str, beam: int = 4, nbest: int = 1) -> None:
    """``ConfigError`` naming the value unless ``decoding`` is known, ``beam`` a whole
    number >= 1 and ``nbest`` between 1 and the beam (1 for greedy)."""
    from streamasr.errors import ConfigError

    if decoding not in DECODINGS:
        raise ConfigError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")
    if not isinstance(beam, int) or isinstance(beam, bool) or beam < 1:
        raise ConfigError(f"beam size must be a whole number >= 1, got {beam!r}")
    most = beam if decoding == "beam" else 1
    if not isinstance(nbest, int) or not 1 <= nbest <= most:
        raise ConfigError(f"nbest must be between 1 and {most} ({decoding} decoding"
                          + (f", beam {beam}" if decoding == "beam" else "") + f"), got {nbest!r}")


def as_decoding(decoding: "str | Decoding" = "greedy", beam: int = 4, nbest: int = 1) -> Decoding:
    """A ``Decoding`` from a name (with ``beam`` and ``nbest``) or as it is; checked."""
    spec = decoding if isinstance(decoding, Decoding) else Decoding(decoding, beam, nbest)
    return spec.check()


__all__ = ["DECODINGS", "Beam", "BeamSearch", "BeamState", "Decoding", "GreedySearch", "GreedyState", "Hypothesis",
           "ContextGraph", "NgramLM", "as_decoding", "read_hotwords", "check_decoding", "load_lm", "train_ngram"]
