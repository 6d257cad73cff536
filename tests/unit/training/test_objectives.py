"""The transducer objective as an object chosen once from the YAML (``transducer_loss``):
the same losses, to the bit, as the Brain's former string/None branches, and a new kind
is one class plus one registry line."""

from __future__ import annotations

import pytest
import speechbrain as sb
import torch
from test_brain import make_brain, toy_batch

from streamasr.errors import ConfigError
from streamasr.losses import rnnt_loss
from streamasr.training.brain import TRANSDUCER_LOSSES
from streamasr.training.objectives import (
    OBJECTIVES,
    FullTransducer,
    PrunedTransducer,
    TransducerObjective,
    objective_from_hparams,
)


def former_joint_logits(brain, enc_proj, dec_proj, stage, transducer_loss):
    """``compute_forward``'s lattice before the objectives, verbatim."""
    logits = None
    if stage != sb.Stage.TRAIN or transducer_loss == "full":
        logits = brain.joiner(enc_proj.unsqueeze(2), dec_proj.unsqueeze(1))
    return logits


def former_transducer_term(brain, predictions, tokens, label_lengths):
    """``compute_objectives``' transducer term before the objectives, verbatim."""
    if predictions.transducer_logits is None:  # pruned objective (training only)
        pruned = brain.modules.pruned_loss(
            predictions.encoder_out, predictions.decoder_out,
            predictions.enc_proj, predictions.dec_proj, brain.joiner,
            tokens, predictions.encoder_lengths, label_lengths, step=brain.optimizer_step,
        )
        transducer = pruned.loss
    else:
        transducer = rnnt_loss(
            predictions.transducer_logits,
            tokens,
            predictions.encoder_lengths,
            label_lengths,
            blank=brain.hparams.blank_index,
            reduction="mean_per_label",
        )
    return transducer


def labels_of(batch):
    tokens, lens = batch.tokens
    return tokens, torch.round(lens * tokens.shape[1]).long()


@pytest.mark.parametrize("kind, expected_class", [("full", FullTransducer), ("pruned", PrunedTransducer)])
def test_each_kind_gives_the_former_losses_and_gradients_to_the_bit(tmp_path, kind, expected_class):
    brain = make_brain(tmp_path, 0.3, loss=kind)
    assert type(brain.objective) is expected_class and brain.transducer_loss == kind
    batch = toy_batch()
    tokens, labels = labels_of(batch)
    brain.hparams.epoch_counter.current = 1
    brain.optimizer_step = 4  # inside the pruned warm-up: the scales are not round numbers
    params = [p for p in brain.modules.parameters() if p.requires_grad]
    for stage in (sb.Stage.TRAIN, sb.Stage.VALID):
        torch.manual_seed(1)
        out = brain.compute_forward(batch, stage)
        reference = former_joint_logits(brain, out.enc_proj, out.dec_proj, stage, kind)
        assert (out.transducer_logits is None) == (reference is None)
        if reference is not None:
            assert torch.equal(out.transducer_logits, reference)
        new = brain.objective.loss(out, tokens, labels, brain.modules, stage, step=brain.optimizer_step)
        old = former_transducer_term(brain, out, tokens, labels)
        assert torch.equal(new, old), (stage, new.item(), old.item())
        if stage == sb.Stage.TRAIN:
            new_grads = torch.autograd.grad(new, params, retain_graph=True, allow_unused=True)
            old_grads = torch.autograd.grad(old, params, retain_graph=True, allow_unused=True)
            for new_grad, old_grad in zip(new_grads, old_grads):
                assert (new_grad is None) == (old_grad is None)
                assert new_grad is None or torch.equal(new_grad, old_grad)
            # the Brain's whole objective mixes the same term with CTC as before
            ctc = torch.nn.functional.ctc_loss(
                out.ctc_logprobs.transpose(0, 1).float(), tokens, out.encoder_lengths, labels,
                blank=brain.hparams.blank_index, reduction="sum", zero_infinity=True,
            ) / labels.sum().clamp(min=1)
            total = brain.compute_objectives(out, batch, stage)
            assert torch.equal(total, (1 - 0.3) * old + 0.3 * ctc)


def test_the_registry_holds_the_yaml_values():
    assert list(OBJECTIVES) == ["full", "pruned"] and TRANSDUCER_LOSSES == ("full", "pruned")
    assert all(issubclass(cls, TransducerObjective) and OBJECTIVES[cls.name] is cls for cls in OBJECTIVES.values())
    assert type(objective_from_hparams({})) is FullTransducer  # no key: full, as before


def test_pruned_without_its_module_is_a_config_error():
    with pytest.raises(ConfigError, match="transducer_loss: pruned needs a `pruned_loss` entry in `modules:`"):
        objective_from_hparams({"transducer_loss": "pruned"}, {})


def test_a_new_kind_is_one_class_and_one_registry_line(tmp_path, monkeypatch):
    class HalfFull(FullTransducer):  # stands for a new kind (TDT would be another)
        name = "half"

        def training_loss(self, predictions, tokens, label_lengths, modules, step):
            return 0.5 * super().training_loss(predictions, tokens, label_lengths, modules, step)

    monkeypatch.setitem(OBJECTIVES, "half", HalfFull)
    brain = make_brain(tmp_path, 0.0, loss="half")
    assert type(brain.objective) is HalfFull
    batch = toy_batch()
    tokens, labels = labels_of(batch)
    brain.hparams.epoch_counter.current = 1  # ctc_weight 0: the transducer term alone
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    full = rnnt_loss(out.transducer_logits, tokens, out.encoder_lengths, labels, reduction="mean_per_label")
    assert torch.equal(brain.compute_objectives(out, batch, sb.Stage.TRAIN), 0.5 * full)
