"""The typed parts of a transducer, named as sherpa-onnx and icefall name them.

* encoder: the Conformer (SpeechBrain ``TransformerASR``) and its projection to the
  joiner dimension (``proj_enc``);
* decoder: the *prediction network* (``PredictionNetwork``: token embedding -> LSTM ->
  projection), never a search;
* joiner: ``Joiner`` (SpeechBrain's ``Transducer_joint`` + the output layer).

``PredictionNetwork`` and ``Joiner`` are thin views over the recipe's modules (they own
no parameters, so checkpoints and ``state_dict`` keys are unchanged); training, the
searches and the exporters all call them, built from the one key mapping
(``streamasr.keys.KEYS``).
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch

from streamasr.cpu import run_lstm
from streamasr.keys import KEYS

LstmState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each [layers, B, hidden]


class PredictionNetwork:
    """The transducer's decoder: tokens ``[B, U]`` -> joiner input ``[B, U, J]``."""

    def __init__(self, embedding: torch.nn.Module, lstm: torch.nn.Module, proj: torch.nn.Module):
        self.embedding = embedding
        self.lstm = lstm
        self.proj = proj

    @classmethod
    def from_modules(cls, modules: Mapping) -> "PredictionNetwork":
        return cls(modules[KEYS.embedding], modules[KEYS.lstm], modules[KEYS.decoder_proj])

    def __call__(self, tokens: torch.Tensor, hidden: Optional[LstmState] = None
                 ) -> tuple[torch.Tensor, torch.Tensor, LstmState]:
        """tokens ``[B, U]`` (blank-prefixed in training, one token per step when
        searching) and the LSTM state (None = fresh) -> (projected output ``[B, U, J]``,
        LSTM output ``[B, U, H]``, new state). The LSTM runs in fp32 where the CPU has no
        bf16 LSTM kernels (``streamasr.cpu.run_lstm``)."""
        output, hidden = run_lstm(self.lstm, self.embedding(tokens), hx=hidden)
        return self.proj(output), output, hidden


class Joiner:
    """Encoder side + decoder side (both already projected to the joiner dimension J)
    -> vocabulary logits. Inputs broadcast: ``[B, T, 1, J]`` + ``[B, 1, U+1, J]`` (the
    full lattice) or ``[B, T, R, J]`` + ``[B, T, R, J]`` (pruned) -> ``[..., V]``."""

    def __init__(self, joint: torch.nn.Module, classifier: torch.nn.Module):
        self.joint = joint
        self.classifier = classifier

    @classmethod
    def from_modules(cls, modules: Mapping) -> "Joiner":
        return cls(modules[KEYS.joint], modules[KEYS.classifier])

    def __call__(self, encoder_side: torch.Tensor, decoder_side: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.joint(encoder_side, decoder_side))
