"""The transducer term of the training objective, as an object chosen once from the YAML.

``transducer_loss: full | pruned`` names an entry of ``OBJECTIVES``; the Brain builds
that objective in its constructor (``objective_from_hparams``) and from then on asks it
two things, with no string compared afterwards:

* what the forward pass must produce (``joint_logits``: the whole ``[B, T, U+1, V]``
  joint lattice, or None when the objective computes its own restricted lattice);
* the transducer loss of a batch (``loss``), per label.

Valid and test losses are the full RNN-T loss per label for every objective
(``evaluation_loss``), so runs trained with different objectives report comparable
numbers. The CTC term, its weight and chunk distillation stay in the Brain: they do not
depend on the transducer objective.

A new kind (say a token-and-duration transducer, TDT) is a new subclass (its own
``joint_logits`` and ``training_loss``, a loss function beside ``streamasr.losses``)
plus one line in ``OBJECTIVES``.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Optional

import speechbrain as sb
import torch

from streamasr.errors import ConfigError
from streamasr.losses import rnnt_loss
from streamasr.parts import Joiner

if TYPE_CHECKING:  # a type only: brain.py imports this module
    from streamasr.training.brain import ForwardOutput

__all__ = ["OBJECTIVES", "OBJECTIVE_KEY", "FullTransducer", "PrunedTransducer", "TransducerObjective",
           "objective_from_hparams"]

OBJECTIVE_KEY = "transducer_loss"  # the YAML key naming the objective
DEFAULT_OBJECTIVE = "full"  # when the YAML has no such key


class TransducerObjective(abc.ABC):
    """The transducer term of the loss: what the forward pass must produce, how the loss
    is computed. ``name`` is the value of the YAML key ``transducer_loss``.

    Objectives hold no modules: they are called with the Brain's modules (which DDP or
    compilation may have wrapped after construction)."""

    name: ClassVar[str]

    def __init__(self, blank: int = 0):
        self.blank = blank

    def prepare_modules(self, modules: Optional[Mapping[str, torch.nn.Module]]) -> None:
        """Check (and adjust) the YAML's ``modules:`` before the Brain takes them;
        raise ConfigError when one the objective needs is missing."""

    # ------------------------------------------------------------------ forward
    def joint_logits(self, joiner: Joiner, enc_proj: torch.Tensor, dec_proj: torch.Tensor,
                     stage: sb.Stage) -> Optional[torch.Tensor]:
        """The joint lattice the loss of ``stage`` needs: ``[B, T, U+1, V]`` from the
        joiner inputs ``enc_proj [B, T, J]`` and ``dec_proj [B, U+1, J]``, or None."""
        return joiner(enc_proj.unsqueeze(2), dec_proj.unsqueeze(1))

    # --------------------------------------------------------------------- loss
    def loss(self, predictions: ForwardOutput, tokens: torch.Tensor, label_lengths: torch.Tensor,
             modules: Any, stage: sb.Stage, step: int) -> torch.Tensor:
        """The transducer loss per label of one batch: ``training_loss`` in TRAIN,
        ``evaluation_loss`` in VALID and TEST. tokens ``[B, U]``, label_lengths ``[B]``;
        modules: the Brain's; step: optimizer steps so far (for schedules)."""
        if stage == sb.Stage.TRAIN:
            return self.training_loss(predictions, tokens, label_lengths, modules, step)
        return self.evaluation_loss(predictions, tokens, label_lengths)

    @abc.abstractmethod
    def training_loss(self, predictions: ForwardOutput, tokens: torch.Tensor, label_lengths: torch.Tensor,
                      modules: Any, step: int) -> torch.Tensor:
        """The loss optimised in training."""

    def evaluation_loss(self, predictions: ForwardOutput, tokens: torch.Tensor,
                        label_lengths: torch.Tensor) -> torch.Tensor:
        """The full RNN-T loss per label over ``predictions.transducer_logits``."""
        return rnnt_loss(
            predictions.transducer_logits,
            tokens,
            predictions.encoder_lengths,
            label_lengths,
            blank=self.blank,
            reduction="mean_per_label",
        )


class FullTransducer(TransducerObjective):
    """The RNN-T loss over the whole ``[B, T, U+1, V]`` joint lattice
    (``streamasr.losses.rnnt_loss``), in training as in evaluation."""

    name = "full"

    def prepare_modules(self, modules: Optional[Mapping[str, torch.nn.Module]]) -> None:
        if modules is not None and "pruned_loss" in modules:
            # Unused parameters: keep them out of DDP's gradient reduction and the optimiser.
            modules["pruned_loss"].requires_grad_(False)

    def training_loss(self, predictions: ForwardOutput, tokens: torch.Tensor, label_lengths: torch.Tensor,
                      modules: Any, step: int) -> torch.Tensor:
        return self.evaluation_loss(predictions, tokens, label_lengths)


class PrunedTransducer(TransducerObjective):
    """Simple + pruned RNN-T loss (``streamasr.losses.pruned``) in training: no full
    lattice is built, the module ``pruned_loss`` (a ``PrunedTransducerLoss``) runs the
    joiner on its pruned windows. Evaluation uses the full lattice."""

    name = "pruned"

    def prepare_modules(self, modules: Optional[Mapping[str, torch.nn.Module]]) -> None:
        if "pruned_loss" not in (modules or {}):
            raise ConfigError(f"{OBJECTIVE_KEY}: pruned needs a `pruned_loss` entry in `modules:` "
                              "(a streamasr.losses.pruned.PrunedTransducerLoss)")

    def joint_logits(self, joiner: Joiner, enc_proj: torch.Tensor, dec_proj: torch.Tensor,
                     stage: sb.Stage) -> Optional[torch.Tensor]:
        if stage == sb.Stage.TRAIN:
            return None
        return super().joint_logits(joiner, enc_proj, dec_proj, stage)

    def training_loss(self, predictions: ForwardOutput, tokens: torch.Tensor, label_lengths: torch.Tensor,
                      modules: Any, step: int) -> torch.Tensor:
        pruned = modules.pruned_loss(
            predictions.encoder_out, predictions.decoder_out,
            predictions.enc_proj, predictions.dec_proj, Joiner.from_modules(modules),
            tokens, predictions.encoder_lengths, label_lengths, step=step,
        )
        return pruned.loss


# One line per kind: the YAML value of `transducer_loss` -> its class.
OBJECTIVES: dict[str, type[TransducerObjective]] = {
    "full": FullTransducer,
    "pruned": PrunedTransducer,
}


def objective_from_hparams(hparams: Optional[Mapping[str, Any]],
                           modules: Optional[Mapping[str, torch.nn.Module]] = None) -> TransducerObjective:
    """The objective that ``transducer_loss`` names (``full`` when absent), with
    ``blank_index`` as its blank; checks ``modules`` against it (``prepare_modules``)."""
    hparams = hparams or {}
    choice = hparams.get(OBJECTIVE_KEY, DEFAULT_OBJECTIVE)
    if not isinstance(choice, str) or choice not in OBJECTIVES:
        raise ConfigError(f"{OBJECTIVE_KEY}: {choice!r} is not one of {', '.join(OBJECTIVES)}")
    objective = OBJECTIVES[choice](blank=hparams.get("blank_index", 0))
    objective.prepare_modules(modules)
    return objective
