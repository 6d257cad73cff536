"""What a search produces and carries between chunks."""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class Hypothesis:
    tokens: list[int]
    frames: list[int]  # encoder frame index (within the decoded input) of each token
    confidences: list[float]  # posterior probability of each emitted token
    # Smallest log-probability gap between the best and second-best symbol over every
    # decision taken: tiny values mean float noise could flip the search (near-ties).
    min_margin: float = float("inf")


@dataclasses.dataclass
class GreedyState:
    """Prediction-network state carried between chunks (one row per stream)."""

    decoder_out: torch.Tensor  # [B, 1, joint_dim] projected prediction-network output
    hidden: tuple  # LSTM (h, c), each [layers, B, hidden]
    min_margins: list  # per stream, smallest decision margin so far (see Hypothesis)

    @staticmethod
    def stack(states: "list[GreedyState]") -> "GreedyState":
        """One batch from the states of several streams (the inverse of ``unstack``)."""
        return GreedyState(
            torch.cat([state.decoder_out for state in states]),
            tuple(torch.cat(parts, dim=1) for parts in zip(*(state.hidden for state in states))),
            [margin for state in states for margin in state.min_margins],
        )

    def unstack(self) -> "list[GreedyState]":
        """One state per stream (batch 1 each)."""
        return [GreedyState(self.decoder_out[row : row + 1], tuple(h[:, row : row + 1] for h in self.hidden),
                            [self.min_margins[row]]) for row in range(self.decoder_out.shape[0])]
