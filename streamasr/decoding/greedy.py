"""Greedy transducer decoding over a batch, respecting each utterance's length.

Why not only SpeechBrain's ``TransducerBeamSearcher.transducer_greedy_decode``: it
decodes the padded frames of shorter utterances in a batch too (they can emit
tokens), and it does not report when each token was emitted. This search follows the
same rule (at each frame, emit the arg-max symbol until it is blank, at most
``max_symbols_per_step + 1`` symbols per frame) so its hypotheses equal the stock
searcher's on unpadded input, and it returns the frame and posterior of every token.
"""

from __future__ import annotations

from typing import Optional

import torch

from streamasr.decoding.hypothesis import GreedyState, Hypothesis
from streamasr.parts import Joiner, PredictionNetwork


class GreedySearch:
    """Batched greedy search over projected encoder frames (``proj_enc`` outputs).

    Arguments
    ---------
    decoder: the prediction network.
    joiner: the joiner (joint network + output layer).
    blank_id: index of blank.
    max_symbols_per_step: as in SpeechBrain (up to this + 1 symbols per frame).
    """

    LOOKAHEAD = 4  # frames whose first decision one joiner call serves
    holds_pending = False  # every token is final when emitted (streamasr.decoding.search)

    def __init__(self, decoder: PredictionNetwork, joiner: Joiner, blank_id: int = 0,
                 max_symbols_per_step: int = 5):
        self.decoder = decoder
        self.joiner = joiner
        self.blank_id = blank_id
        self.max_symbols_per_step = max_symbols_per_step

    def _predict(self, tokens: torch.Tensor, hidden) -> tuple[torch.Tensor, tuple]:
        """tokens [B, 1] -> projected prediction output [B, 1, J] and new hidden."""
        projected, _, hidden = self.decoder(tokens, hidden)
        return projected, hidden

    def initial_state(self, batch_size: int, device: torch.device | str) -> GreedyState:
        tokens = torch.full((batch_size, 1), self.blank_id, dtype=torch.long, device=device)
        decoder_out, hidden = self._predict(tokens, None)
        return GreedyState(decoder_out, hidden, [float("inf")] * batch_size)

    @torch.no_grad()
    def finish(self, state: GreedyState, nbest: int = 1) -> tuple[list[Hypothesis], list[list[tuple[list[int], float]]]]:
        """Nothing is held back by greedy search: an empty rest per stream, no n-best."""
        rows = len(state.min_margins) if state is not None else 0
        return [Hypothesis([], [], []) for _ in range(rows)], [[] for _ in range(rows)]

    def __call__(
        self,
        encoder_out: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
        state: Optional[GreedyState] = None,
    ) -> tuple[list[Hypothesis], GreedyState]:
        """Decode ``encoder_out`` ``[B, T, J]`` (projected encoder frames).

        ``lengths`` ``[B]`` gives valid frames per row (default: all T). ``state`` is the
        prediction network state from a previous chunk of the same streams (default:
        fresh). Returns one Hypothesis per row and the state after the last frame.
        """
        batch, frames, _ = encoder_out.shape
        device = encoder_out.device
        if lengths is None:
            lengths = torch.full((batch,), frames, dtype=torch.long, device=device)
        if state is None:
            state = self.initial_state(batch, device)
        decoder_out = state.decoder_out.clone()
        hidden = tuple(h.clone() for h in state.hidden)
        hyps = [Hypothesis([], [], [], state.min_margins[row]) for row in range(batch)]
        min_margins = torch.tensor(state.min_margins, dtype=torch.float64, device=device)  # exact for any dtype
        # The first decision at a frame uses the prediction output of the last emission,
        # which stays the same over runs of blank frames: one joiner call gives those
        # logits for the next LOOKAHEAD frames, renewed after a row has emitted (fewer
        # joiner calls per chunk; the same decisions; a bounded window, because in a
        # large batch some row emits at almost every frame).
        first_logits, first_from, first_to = None, 0, 0
        stale = torch.ones(batch, dtype=torch.bool, device=device)
        for frame in range(frames):
            active = lengths > frame
            if frame >= first_to or bool((stale & active).any()):
                first_to = min(frames, frame + self.LOOKAHEAD)
                first_logits = self.joiner(encoder_out[:, frame:first_to, None, :], decoder_out[:, None])[:, :, 0, :]
                first_from = frame
                stale[:] = False
            for symbol in range(self.max_symbols_per_step + 1):
                if symbol == 0:
                    logits = first_logits[:, frame - first_from]
                else:
                    logits = self.joiner(encoder_out[:, frame : frame + 1, None, :], decoder_out[:, None])[:, 0, 0, :]
                top = logits.log_softmax(dim=-1).topk(2, dim=-1)
                best_logp, best = top.values[:, 0], top.indices[:, 0]
                margins = top.values[:, 0] - top.values[:, 1]
                min_margins = torch.where(active, torch.minimum(min_margins, margins.to(min_margins)), min_margins)
                emit = active & (best != self.blank_id)
                if not bool(emit.any()):
                    break
                rows = emit.nonzero(as_tuple=True)[0]
                for row in rows.tolist():
                    hyps[row].tokens.append(int(best[row]))
                    hyps[row].frames.append(frame)
                    hyps[row].confidences.append(float(best_logp[row].exp()))
                selected_hidden = tuple(h[:, rows] for h in hidden)
                new_out, new_hidden = self._predict(best[rows, None], selected_hidden)
                decoder_out[rows] = new_out
                for h, new in zip(hidden, new_hidden):
                    h[:, rows] = new
                stale[rows] = True
                active = emit
        for hyp, margin in zip(hyps, min_margins.tolist()):
            hyp.min_margin = margin
        return hyps, GreedyState(decoder_out, hidden, [h.min_margin for h in hyps])
