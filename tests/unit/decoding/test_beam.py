"""Batched modified beam search (streamasr.decoding.beam): beam 1 is greedy with one
symbol per frame, merged scores are the sum over alignments (an exhaustive oracle on
tiny lattices), chunk by chunk equals one shot, a batch equals each stream alone, and
partial results never retract."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from streamasr.decoding import GreedySearch
from streamasr.decoding.beam import BeamSearch, BeamState
from streamasr.errors import ConfigError


class StubDecoder:
    """A small LSTM prediction network with the PredictionNetwork call signature."""

    def __init__(self, vocab: int, dim: int = 6, seed: int = 0):
        torch.manual_seed(seed)
        self.embedding = torch.nn.Embedding(vocab, dim)
        self.lstm = torch.nn.LSTM(dim, dim, batch_first=True)
        self.proj = torch.nn.Linear(dim, dim)

    def __call__(self, tokens, hidden=None):
        out, hidden = self.lstm(self.embedding(tokens), hidden)
        return self.proj(out), out, hidden


class StubJoiner:
    def __init__(self, vocab: int, dim: int = 6, seed: int = 1, scale: float = 2.0):
        torch.manual_seed(seed)
        self.out = torch.nn.Linear(dim, vocab)
        self.scale = scale

    def __call__(self, encoder_side, decoder_side):
        return self.out(torch.tanh(encoder_side + decoder_side)) * self.scale


def parts(vocab=4, dim=6, seed=0):
    return StubDecoder(vocab, dim, seed), StubJoiner(vocab, dim, seed + 1)


def frames(batch, length, dim=6, seed=3):
    return torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(seed))


def run_chunked(search, encoder_out, lengths, chunk):
    state = search.initial_state(encoder_out.shape[0], "cpu")
    tokens = [[] for _ in range(encoder_out.shape[0])]
    for start in range(0, encoder_out.shape[1], chunk):
        piece_lengths = (lengths - start).clamp(min=0, max=chunk)
        hyps, state = search(encoder_out[:, start : start + chunk], piece_lengths, state)
        for row, hyp in enumerate(hyps):
            tokens[row].extend(hyp.tokens)
    rest, nbest = search.finish(state, nbest=search.beam_size)
    for row, hyp in enumerate(rest):
        tokens[row].extend(hyp.tokens)
    return tokens, nbest, state


def test_beam_one_is_greedy_with_one_symbol_per_frame():
    decoder, joiner = parts(vocab=6)
    greedy = GreedySearch(decoder, joiner, blank_id=0, max_symbols_per_step=0)
    beam = BeamSearch(decoder, joiner, blank_id=0, beam_size=1)
    encoder_out = frames(3, 20)
    lengths = torch.tensor([20, 13, 7])
    expected, _ = greedy(encoder_out, lengths)
    tokens, _, _ = run_chunked(beam, encoder_out, lengths, chunk=20)
    assert tokens == [hyp.tokens for hyp in expected]
    assert sum(len(t) for t in tokens) > 5, "vacuous: the stub should emit tokens"


def _sequence_scores(decoder, joiner, encoder_out, blank=0):
    """Exhaustive oracle: log of the sum over every one-symbol-per-frame alignment of
    each token sequence."""
    length, vocab = encoder_out.shape[0], joiner.out.out_features
    totals: dict = {}
    for path in itertools.product(range(vocab), repeat=length):
        history, logp = [], 0.0
        for frame, symbol in enumerate(path):
            tokens = torch.tensor([[blank] + history])
            out, _, _ = decoder(tokens)
            logits = joiner(encoder_out[frame][None, None, None], out[:, -1:][:, None])[0, 0, 0]
            logp += float(logits.detach().double().log_softmax(-1)[symbol])
            if symbol != blank:
                history.append(symbol)
        key = tuple(history)
        totals[key] = logp if key not in totals else max(totals[key], logp) + math.log1p(
            math.exp(-abs(totals[key] - logp)))
    return totals


@pytest.mark.parametrize("length,vocab", [(4, 3), (5, 3), (6, 2)])
def test_merged_scores_are_the_sum_over_alignments(length, vocab):
    decoder, joiner = parts(vocab=vocab)
    encoder_out = frames(1, length, seed=length)
    oracle = _sequence_scores(decoder, joiner, encoder_out[0])
    # nothing pruned: room for every alignment's extension (duplicates are merged only
    # after the top K of all extensions are chosen, as in icefall)
    search = BeamSearch(decoder, joiner, blank_id=0, beam_size=vocab ** length)
    _, nbest, _ = run_chunked(search, encoder_out, torch.tensor([length]), chunk=2)
    found = {tuple(tokens): score for tokens, score in nbest[0]}
    assert set(found) == set(oracle)
    for key, score in oracle.items():
        assert found[key] == pytest.approx(score, abs=1e-6)
    assert math.isclose(math.log(sum(math.exp(v) for v in oracle.values())), 0.0, abs_tol=1e-9)


@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_chunk_by_chunk_equals_one_shot_and_batch_equals_alone(chunk):
    decoder, joiner = parts(vocab=7)
    search = BeamSearch(decoder, joiner, blank_id=0, beam_size=4)
    encoder_out = frames(3, 24, seed=11)
    lengths = torch.tensor([24, 17, 9])
    one_shot, one_nbest, _ = run_chunked(search, encoder_out, lengths, chunk=24)
    chunked, chunked_nbest, _ = run_chunked(search, encoder_out, lengths, chunk=chunk)
    assert chunked == one_shot
    for a, b in zip(one_nbest, chunked_nbest):
        assert [t for t, _ in a] == [t for t, _ in b]
        assert [s for _, s in a] == pytest.approx([s for _, s in b], abs=1e-6)
    for row in range(3):
        alone, alone_nbest, _ = run_chunked(search, encoder_out[row : row + 1, : int(lengths[row])],
                                            lengths[row : row + 1], chunk=chunk)
        assert alone[0] == one_shot[row]
        assert [t for t, _ in alone_nbest[0]] == [t for t, _ in one_nbest[row]]
        assert [s for _, s in alone_nbest[0]] == pytest.approx([s for _, s in one_nbest[row]], abs=1e-6)


def test_partials_never_retract_and_states_stack():
    decoder, joiner = parts(vocab=7)
    search = BeamSearch(decoder, joiner, blank_id=0, beam_size=3)
    encoder_out = frames(2, 30, seed=5)
    lengths = torch.tensor([30, 30])
    state = search.initial_state(2, "cpu")
    emitted = [[], []]
    for start in range(0, 30, 5):
        hyps, state = search(encoder_out[:, start : start + 5], lengths.clamp(max=5), state)
        for row, hyp in enumerate(hyps):
            emitted[row].extend(hyp.tokens)
            assert all(-start <= f < 5 for f in hyp.frames)
            for beam in state.beams[row]:  # what was returned is a prefix of every live hypothesis
                assert list(beam.tokens[: len(emitted[row])]) == emitted[row]
        rows = state.unstack()
        state = BeamState.stack(rows)
    rest, nbest = search.finish(state, nbest=2)
    for row in range(2):
        assert emitted[row] + rest[row].tokens == nbest[row][0][0]
        assert nbest[row][0][1] >= nbest[row][-1][1]


def test_bad_beam_sizes():
    decoder, joiner = parts()
    with pytest.raises(ConfigError, match="beam size must be a whole number >= 1, got 0"):
        BeamSearch(decoder, joiner, beam_size=0)
    search = BeamSearch(decoder, joiner, beam_size=2)
    with pytest.raises(ConfigError, match="beam states of different beam sizes"):
        BeamState.stack([search.initial_state(1, "cpu"), BeamSearch(decoder, joiner, beam_size=3).initial_state(1, "cpu")])
