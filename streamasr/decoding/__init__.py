"""Searches over a transducer's outputs: hypotheses and their carried state, greedy
search (room for modified beam search, LM fusion and hotwords)."""

from streamasr.decoding.greedy import GreedySearch
from streamasr.decoding.hypothesis import GreedyState, Hypothesis

__all__ = ["GreedySearch", "GreedyState", "Hypothesis"]
