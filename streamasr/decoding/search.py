"""The search contract: what the streaming recogniser, the masked simulation and the
server need from a search (sherpa-onnx's decoder interface, one class per search).

A search runs over projected encoder frames chunk by chunk, carrying its state:
``initial_state`` -> ``__call__`` per chunk -> ``finish`` at the end of a stream (or an
endpointed segment). ``holds_pending`` says whether it keeps tokens back until then:
greedy search emits every token for good as soon as it finds it (nothing pending),
beam search returns only the common prefix of its hypotheses and the rest of the best
one at ``finish``. States of several streams stack into one batch state and unstack
again (``GreedyState`` / ``BeamState``: ``stack``, ``unstack``).
"""

from __future__ import annotations

from typing import Optional, Protocol, runtime_checkable

import torch

from streamasr.decoding.hypothesis import Hypothesis


@runtime_checkable
class Search(Protocol):
    decoder: object  # the prediction network
    joiner: object
    blank_id: int
    max_symbols_per_step: int
    holds_pending: bool

    def initial_state(self, batch_size: int, device: torch.device | str) -> object: ...

    def __call__(self, encoder_out: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                 state: Optional[object] = None) -> tuple[list[Hypothesis], object]: ...

    def finish(self, state: object, nbest: int = 1) -> tuple[list[Hypothesis], list[list[tuple[list[int], float]]]]:
        ...


__all__ = ["Search"]
