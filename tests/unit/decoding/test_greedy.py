"""Greedy search: chunk by chunk with carried state equals decoding at once."""

from __future__ import annotations

import torch


def test_decoding_chunk_by_chunk_with_carried_state_equals_decoding_at_once(model):
    generator = torch.Generator().manual_seed(3)
    encoded = torch.randn(2, 37, model.encoder_proj.w.out_features, generator=generator) * 3
    whole, _ = model.search(encoded)
    state, pieces = None, [[] for _ in range(2)]
    for start in range(0, 37, 5):
        hyps, state = model.search(encoded[:, start : start + 5], state=state)
        for row, hyp in enumerate(hyps):
            pieces[row].extend((t, start + f) for t, f in zip(hyp.tokens, hyp.frames))
    for row in range(2):
        assert pieces[row] == list(zip(whole[row].tokens, whole[row].frames))
    assert sum(len(h.tokens) for h in whole) > 20  # the comparison is not vacuous
