"""Batched modified beam search for the transducer, streamable.

"Modified" beam search (icefall's ``modified_beam_search``, sherpa-onnx's
``modified_beam_search``): at most one symbol per encoder frame, K hypotheses per
stream. At each frame every hypothesis is extended by every symbol (blank keeps its
tokens), the K best extensions per stream survive, and extensions with the same token
sequence are merged by adding their probabilities (log-add). All non-blank survivors
of all streams go through the prediction network in one batched call per frame.

Why our own: SpeechBrain's ``TransducerBeamSearcher`` decodes whole utterances one at a
time (no state carried between chunks, no batch of streams), and icefall's needs k2.

Streaming: ``BeamState`` (the K hypotheses of each stream with their scores, token
histories and prediction-network states) is carried between chunks and stacks like
the rest of a stream's state, so the result of decoding chunk by chunk equals decoding
the same encoder frames at once. Partial results never retract text: each call returns
the tokens of the longest common prefix of a stream's hypotheses not returned before;
``finish`` returns the rest of the best hypothesis and the n-best list.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import torch

from streamasr.decoding.hotwords import ContextGraph
from streamasr.decoding.hypothesis import Hypothesis
from streamasr.decoding.lm import NgramLM
from streamasr.errors import ConfigError
from streamasr.parts import Joiner, PredictionNetwork


@dataclasses.dataclass(frozen=True)
class Beam:
    """One hypothesis: its tokens with the (absolute) encoder frame and posterior of each."""

    tokens: tuple = ()
    frames: tuple = ()
    confidences: tuple = ()
    context: int = 0  # hotwords: the node of the context graph (0: none matched)


@dataclasses.dataclass
class BeamState:
    """The search state of a batch of streams: K slots per stream (slot ``b * K + k``
    of the tensors), unused slots scored -inf."""

    scores: torch.Tensor  # [B, K] float64 log-probabilities
    decoder_out: torch.Tensor  # [B * K, 1, J] projected prediction-network output
    hidden: tuple  # LSTM (h, c), each [layers, B * K, hidden]
    beams: list  # per stream, the hypotheses of its live slots (best first)
    emitted: list  # per stream, tokens already returned (a common prefix of its beams)
    frames_seen: list  # per stream, encoder frames decoded so far
    beam_size: int
    graphs: list = None  # per stream, its own hotwords (a ContextGraph) or None: the search's

    def __post_init__(self):
        if self.graphs is None:
            self.graphs = [None] * len(self.beams)

    @property
    def min_margins(self) -> list:  # the greedy state's near-tie report; not tracked here
        return [float("inf")] * len(self.beams)

    @staticmethod
    def stack(states: "list[BeamState]") -> "BeamState":
        sizes = {state.beam_size for state in states}
        if len(sizes) != 1:
            raise ConfigError(f"beam states of different beam sizes ({sorted(sizes)}) cannot share a batch")
        return BeamState(
            torch.cat([s.scores for s in states]),
            torch.cat([s.decoder_out for s in states]),
            tuple(torch.cat(parts, dim=1) for parts in zip(*(s.hidden for s in states))),
            [beams for s in states for beams in s.beams],
            [n for s in states for n in s.emitted],
            [n for s in states for n in s.frames_seen],
            states[0].beam_size,
            [g for s in states for g in s.graphs],
        )

    def unstack(self) -> "list[BeamState]":
        k = self.beam_size
        return [BeamState(self.scores[b : b + 1], self.decoder_out[b * k : (b + 1) * k],
                          tuple(h[:, b * k : (b + 1) * k] for h in self.hidden), [self.beams[b]],
                          [self.emitted[b]], [self.frames_seen[b]], k, [self.graphs[b]])
                for b in range(len(self.beams))]


def _common_prefix(beams: list[Beam]) -> int:
    first = beams[0].tokens
    length = len(first)
    for beam in beams[1:]:
        length = min(length, len(beam.tokens))
        for index in range(length):
            if beam.tokens[index] != first[index]:
                length = index
                break
    return length


class BeamSearch:
    """Batched modified beam search over projected encoder frames (the interface of
    ``GreedySearch``: ``initial_state``, ``__call__(encoder_out, lengths, state)``),
    plus ``finish(state, nbest)`` at the end of a stream."""

    def __init__(self, decoder: PredictionNetwork, joiner: Joiner, blank_id: int = 0, beam_size: int = 4,
                 fusion: Sequence[tuple[NgramLM, float]] = (), hotwords: Optional[ContextGraph] = None):
        """``fusion``: token n-gram LMs with their weights, added to a token's score
        (shallow fusion; LODR is a low-order LM with a negative weight, ``Decoding``
        builds the list from ``lm_weight`` / ``lodr_weight``)."""
        if not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError(f"beam size must be a whole number >= 1, got {beam_size!r}")
        for _, value in fusion:
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"an LM weight must be a finite number, got {value!r}")
        self.decoder = decoder
        self.joiner = joiner
        self.blank_id = blank_id
        self.beam_size = beam_size
        self.max_symbols_per_step = 0  # one symbol per frame, by definition of this search
        self.holds_pending = True  # the best hypothesis beyond the common prefix waits for finish()
        # Shallow fusion, blank-aware: a token's score adds lm_weight x log P_LM(token |
        # history) (minus lodr_weight x a low-order LM's, LODR); blank adds nothing; the
        # end of sentence is scored in finish().
        self.fusion = [(m, w) for m, w in fusion if m is not None and w != 0]
        # Hotwords (streamasr.decoding.hotwords): a token's score adds its context-graph
        # bonus; an unfinished match is refunded in finish().
        self.hotwords = hotwords if hotwords is not None and hotwords.phrases else None

    @torch.no_grad()
    def initial_state(self, batch_size: int, device: torch.device | str) -> BeamState:
        k = self.beam_size
        tokens = torch.full((batch_size * k, 1), self.blank_id, dtype=torch.long, device=device)
        decoder_out, _, hidden = self.decoder(tokens, None)
        scores = torch.full((batch_size, k), -math.inf, dtype=torch.float64, device=device)
        scores[:, 0] = 0.0
        return BeamState(scores, decoder_out, hidden, [[Beam()] for _ in range(batch_size)], [0] * batch_size,
                         [0] * batch_size, k)

    @torch.no_grad()
    def __call__(self, encoder_out: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                 state: Optional[BeamState] = None) -> tuple[list[Hypothesis], BeamState]:
        """Decode ``encoder_out`` ``[B, T, J]`` (``lengths`` valid frames per row) from
        ``state``; returns per row the newly stable tokens (frames relative to this
        call's first frame) and the next state."""
        batch, frames, _ = encoder_out.shape
        device = encoder_out.device
        if lengths is None:
            lengths = torch.full((batch,), frames, dtype=torch.long, device=device)
        if state is None:
            state = self.initial_state(batch, device)
        if state.beam_size != self.beam_size or len(state.beams) != batch:
            raise ConfigError(f"beam state for {len(state.beams)} streams x {state.beam_size} beams, "
                              f"search for {batch} x {self.beam_size}")
        k = self.beam_size
        scores = state.scores.clone()
        decoder_out, hidden = state.decoder_out, state.hidden
        beams = [list(b) for b in state.beams]
        starts = list(state.frames_seen)
        for frame in range(frames):
            active = (lengths > frame).tolist()
            if not any(active):
                break
            encoder_side = encoder_out[:, frame].repeat_interleave(k, dim=0)  # [B * K, J]
            logits = self.joiner(encoder_side[:, None, None, :], decoder_out[:, None])[:, 0, 0, :]
            logp = logits.double().log_softmax(dim=-1).view(batch, k, -1)  # [B, K, V]
            vocab = logp.shape[-1]
            candidates = scores[:, :, None] + logp
            if self.fusion:
                candidates = candidates + self._fusion_scores(beams, active, k, vocab, device)
            # a stream's own graph (an empty one: hotwords off for it), else the search's
            graphs = [(g if g.phrases else None) if g is not None else self.hotwords for g in state.graphs]
            if any(g is not None for g in graphs):
                candidates = candidates + self._hotword_scores(beams, active, graphs, k, vocab, device)
            candidates = candidates.view(batch, k * vocab)
            top_values, top_indices = candidates.topk(min(k, k * vocab), dim=-1)
            sources, tokens, new_scores, new_beams = [], [], [], []
            for b in range(batch):
                if not active[b]:
                    sources.append(list(range(b * k, b * k + len(beams[b]))))
                    tokens.append([None] * len(beams[b]))
                    new_scores.append(scores[b, : len(beams[b])].tolist())
                    new_beams.append(beams[b])
                    continue
                merged: dict = {}
                for value, index in zip(top_values[b].tolist(), top_indices[b].tolist()):
                    if value == -math.inf:
                        break
                    slot, symbol = divmod(index, vocab)
                    parent = beams[b][slot]
                    if symbol == self.blank_id:
                        key, beam, token = parent.tokens, parent, None
                    else:
                        key = parent.tokens + (symbol,)
                        context = graphs[b].step(parent.context, symbol)[1] if graphs[b] is not None else 0
                        beam = Beam(key, parent.frames + (starts[b] + frame,),
                                    parent.confidences + (math.exp(float(logp[b, slot, symbol])),), context)
                        token = symbol
                    if key in merged:  # the same tokens by another path: add the probabilities
                        other = merged[key][0]
                        merged[key][0] = max(other, value) + math.log1p(math.exp(-abs(other - value)))
                    else:
                        merged[key] = [value, b * k + slot, token, beam]
                ranked = sorted(merged.values(), key=lambda entry: -entry[0])
                sources.append([entry[1] for entry in ranked])
                tokens.append([entry[2] for entry in ranked])
                new_scores.append([entry[0] for entry in ranked])
                new_beams.append([entry[3] for entry in ranked])
            # gather parent states into the new slots; one prediction-network call for
            # every non-blank extension of every stream
            index = torch.arange(batch * k, device=device)
            for b in range(batch):
                for j, source in enumerate(sources[b]):
                    index[b * k + j] = source
                for j in range(len(sources[b]), k):
                    index[b * k + j] = sources[b][0]  # unused slot: any valid state
            decoder_out = decoder_out[index]
            hidden = tuple(h[:, index] for h in hidden)
            extended = [(b * k + j, token) for b in range(batch) for j, token in enumerate(tokens[b])
                        if token is not None]
            if extended:
                rows = torch.tensor([row for row, _ in extended], device=device)
                symbols = torch.tensor([[token] for _, token in extended], dtype=torch.long, device=device)
                out, _, new_hidden = self.decoder(symbols, tuple(h[:, rows] for h in hidden))
                decoder_out = decoder_out.clone()
                decoder_out[rows] = out
                hidden = tuple(h.clone() for h in hidden)
                for h, new in zip(hidden, new_hidden):
                    h[:, rows] = new
            scores = torch.full((batch, k), -math.inf, dtype=torch.float64, device=device)
            for b in range(batch):
                scores[b, : len(new_scores[b])] = torch.tensor(new_scores[b], dtype=torch.float64)
            beams = new_beams
        seen = [start + min(frames, int(length)) for start, length in zip(starts, lengths.tolist())]
        next_state = BeamState(scores, decoder_out, hidden, beams, list(state.emitted), seen, k, list(state.graphs))
        hyps = [self._stable(next_state, b, starts[b]) for b in range(batch)]
        return hyps, next_state

    def _fusion_scores(self, beams: list, active: list, k: int, vocab: int, device) -> torch.Tensor:
        """``[B, K, V]``: the weighted LM log-probabilities of every token after each
        live hypothesis (0 for blank and unused slots)."""
        out = torch.zeros(len(beams), k, vocab, dtype=torch.float64)
        for b, row in enumerate(beams):
            if not active[b]:
                continue
            for slot, beam in enumerate(row):
                for lm, weight in self.fusion:
                    out[b, slot] += weight * lm.log_probs(lm.context(beam.tokens))[:vocab]
        out[:, :, self.blank_id] = 0.0
        return out.to(device)

    def _hotword_scores(self, beams: list, active: list, graphs: list, k: int, vocab: int, device) -> torch.Tensor:
        """``[B, K, V]``: the context-graph bonus of every token after each live
        hypothesis (0 for blank, unused slots and streams without hotwords)."""
        out = torch.zeros(len(beams), k, vocab, dtype=torch.float64)
        for b, row in enumerate(beams):
            if not active[b] or graphs[b] is None:
                continue
            for slot, beam in enumerate(row):
                out[b, slot] = graphs[b].bonus_vector(beam.context, vocab)
        out[:, :, self.blank_id] = 0.0
        return out.to(device)

    def _end_scores(self, beams: list, graph: Optional[ContextGraph]) -> list:
        """What the end of the stream adds to each hypothesis: the weighted LM
        log-probability of the end of sentence, the refund of an unfinished hotword."""
        scores = [sum(weight * float(lm.log_probs(lm.context(beam.tokens))[lm.eos]) for lm, weight in self.fusion)
                  for beam in beams]
        if graph is not None:
            scores = [score + graph.finish(beam.context) for score, beam in zip(scores, beams)]
        return scores

    @staticmethod
    def _stable(state: BeamState, row: int, origin: int) -> Hypothesis:
        """The common prefix of a stream's beams not returned yet (frames relative to
        ``origin``); advances ``state.emitted``."""
        beams = state.beams[row]
        stable = _common_prefix(beams)
        best, done = beams[0], state.emitted[row]
        state.emitted[row] = max(done, stable)
        return Hypothesis(list(best.tokens[done:stable]), [f - origin for f in best.frames[done:stable]],
                          list(best.confidences[done:stable]))

    @torch.no_grad()
    def finish(self, state: BeamState, nbest: int = 1) -> tuple[list[Hypothesis], list[list[tuple[list[int], float]]]]:
        """End of the streams: per stream the best hypothesis's tokens not returned yet
        (frames relative to the frames seen) and its n-best list ``(tokens, log-prob)``."""
        remaining, lists = [], []
        for row, beams in enumerate(state.beams):
            scores = state.scores[row, : len(beams)].tolist()
            own = state.graphs[row]
            graph = (own if own.phrases else None) if own is not None else self.hotwords
            if self.fusion or graph is not None:  # the end of sentence, unfinished hotwords
                scores = [a + b for a, b in zip(scores, self._end_scores(beams, graph))]
            ranked = sorted(zip(scores, range(len(beams))), key=lambda pair: -pair[0])
            best, done, origin = beams[ranked[0][1]], state.emitted[row], state.frames_seen[row]
            remaining.append(Hypothesis(list(best.tokens[done:]), [f - origin for f in best.frames[done:]],
                                        list(best.confidences[done:])))
            state.emitted[row] = len(best.tokens)
            lists.append([(list(beams[j].tokens), score) for score, j in ranked[:nbest]])
        return remaining, lists


__all__ = ["Beam", "BeamSearch", "BeamState"]
