"""Searches over a transducer's outputs: hypotheses and their carried state, greedy
search and batched modified beam search (``beam.py``; room for LM fusion and hotwords)."""

from streamasr.decoding.beam import Beam, BeamSearch, BeamState
from streamasr.decoding.greedy import GreedySearch
from streamasr.decoding.hypothesis import GreedyState, Hypothesis

DECODINGS = ("greedy", "beam")


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


def make_search(decoder, joiner, blank_id: int, decoding: str = "greedy", beam: int = 4,
                max_symbols_per_step: int = 5):
    """The search called ``decoding`` (``greedy`` or ``beam`` with ``beam`` hypotheses)
    over a prediction network and joiner; ``ConfigError`` for another name."""
    from streamasr.errors import ConfigError

    if decoding == "greedy":
        return GreedySearch(decoder, joiner, blank_id=blank_id, max_symbols_per_step=max_symbols_per_step)
    if decoding == "beam":
        return BeamSearch(decoder, joiner, blank_id=blank_id, beam_size=beam)
    raise ConfigError(f"decoding must be one of {', '.join(DECODINGS)}, got {decoding!r}")


__all__ = ["DECODINGS", "Beam", "BeamSearch", "BeamState", "GreedySearch", "GreedyState", "Hypothesis",
           "check_decoding", "make_search"]
