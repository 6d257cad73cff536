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
