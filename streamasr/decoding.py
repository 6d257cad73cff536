"""Greedy transducer decoding over a batch, respecting each utterance's length.

Why not only SpeechBrain's ``TransducerBeamSearcher.transducer_greedy_decode``: it
decodes the padded frames of shorter utterances in a batch too (they can emit
tokens), and it does not report when each token was emitted. This search follows the
same rule (at each frame, emit the arg-max symbol until it is blank, at most
``max_symbols_per_step + 1`` symbols per frame) so its hypotheses equal the stock
searcher's on unpadded input, and it returns the frame and posterior of every token.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from streamasr.cpu import run_lstm


@dataclasses.dataclass
class GreedyState:
    """Prediction-network state carried between chunks (one row per stream)."""

    decoder_out: torch.Tensor  # [B, 1, joint_dim] projected prediction-network output
    hidden: tuple  # LSTM (h, c), each [layers, B, hidden]
    min_margins: list  # per stream, smallest decision margin so far (see Hypothesis)


@dataclasses.dataclass
class Hypothesis:
    tokens: list[int]
    frames: list[int]  # encoder frame index (within the decoded input) of each token
    confidences: list[float]  # posterior probability of each emitted token
    # Smallest log-probability gap between the best and second-best symbol over every
    # decision taken: tiny values mean float noise could flip the search (near-ties).
    min_margin: float = float("inf")


class GreedyTransducerDecoder:
    """Batched greedy search over ``proj_enc`` outputs.

    Arguments
    ---------
    embedding, decoder, decoder_proj: prediction network (token embedding, LSTM, linear).
    joint: ``Transducer_joint`` combining ``[B, T, 1, J]`` and ``[B, 1, U, J]``.
    classifier: final linear layer mapping the joint to vocabulary logits.
    blank_id: index of blank.
    max_symbols_per_step: as in SpeechBrain (up to this + 1 symbols per frame).
    """

    def __init__(
        self,
        embedding,
        decoder,
        decoder_proj,
        joint,
        classifier,
        blank_id: int = 0,
        max_symbols_per_step: int = 5,
    ):
        self.embedding = embedding
        self.decoder = decoder
        self.decoder_proj = decoder_proj
        self.joint = joint
        self.classifier = classifier
        self.blank_id = blank_id
        self.max_symbols_per_step = max_symbols_per_step

    def _predict(self, tokens: torch.Tensor, hidden) -> tuple[torch.Tensor, tuple]:
        """tokens [B, 1] -> projected prediction output [B, 1, J] and new hidden."""
        out, hidden = run_lstm(self.decoder, self.embedding(tokens), hx=hidden)
        return self.decoder_proj(out), hidden

    def initial_state(self, batch_size: int, device) -> GreedyState:
        tokens = torch.full((batch_size, 1), self.blank_id, dtype=torch.long, device=device)
        decoder_out, hidden = self._predict(tokens, None)
        return GreedyState(decoder_out, hidden, [float("inf")] * batch_size)

    @torch.no_grad()
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
        for frame in range(frames):
            active = lengths > frame
            for _ in range(self.max_symbols_per_step + 1):
                logits = self.classifier(
                    self.joint(encoder_out[:, frame : frame + 1, None, :], decoder_out[:, None])
                )[:, 0, 0, :]
                top = logits.log_softmax(dim=-1).topk(2, dim=-1)
                best_logp, best = top.values[:, 0], top.indices[:, 0]
                margins = (top.values[:, 0] - top.values[:, 1]).tolist()
                for row in active.nonzero(as_tuple=True)[0].tolist():
                    hyps[row].min_margin = min(hyps[row].min_margin, margins[row])
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
                active = emit
        return hyps, GreedyState(decoder_out, hidden, [h.min_margin for h in hyps])


def greedy_decoder_from(modules, blank_id: int) -> GreedyTransducerDecoder:
    """The greedy search over a recipe's ``emb``/``dec``/``proj_dec``/``Tjoint``/
    ``transducer_lin`` modules (a dict or ``ModuleDict``)."""
    return GreedyTransducerDecoder(
        modules["emb"],
        modules["dec"],
        modules["proj_dec"],
        modules["Tjoint"],
        modules["transducer_lin"],
        blank_id=blank_id,
    )
