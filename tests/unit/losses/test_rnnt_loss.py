"""Our full RNN-T loss against torchaudio, a hand-computed lattice and gradcheck; the
lattice's forward-backward gradient equals autograd through the recursion."""


import math
import warnings

import pytest
import torch

from streamasr.losses import rnnt_loss


def torchaudio_rnnt(logits, targets, frames, labels, blank):
    import torchaudio.functional as F

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return F.rnnt_loss(
            logits, targets.int(), frames.int(), labels.int(), blank=blank, reduction="none"
        )


def random_batch(batch=5, frames=13, labels=6, vocab=9, blank=0, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, labels + 1, vocab, generator=generator, dtype=dtype)
    non_blank = [v for v in range(vocab) if v != blank]
    targets = torch.tensor(non_blank)[torch.randint(len(non_blank), (batch, labels), generator=generator)]
    frame_lengths = torch.randint(1, frames + 1, (batch,), generator=generator)
    label_lengths = torch.randint(0, labels + 1, (batch,), generator=generator)
    frame_lengths[0], label_lengths[0] = frames, labels  # one full-size entry
    label_lengths[1] = 0  # U = 0
    return logits, targets, frame_lengths, label_lengths


@pytest.mark.parametrize("blank", [0, 4, 8])
def test_loss_and_gradients_match_torchaudio(blank):
    logits, targets, frames, labels = random_batch(blank=blank, seed=blank)
    ours_logits = logits.clone().requires_grad_(True)
    ref_logits = logits.clone().requires_grad_(True)
    ours = rnnt_loss(ours_logits, targets, frames, labels, blank=blank, reduction="none")
    ref = torchaudio_rnnt(ref_logits, targets, frames, labels, blank)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-4)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(ours_logits.grad, ref_logits.grad, rtol=1e-4, atol=1e-4)


def test_matches_hand_computed_lattice():
    # T = 2 frames, U = 1 label (id 1), blank 0: two alignments,
    #   emit y at t0 then blank at (0,1), blank at (1,1)
    #   blank at (0,0), emit y at t1, blank at (1,1)
    logits = torch.tensor(
        [[[[0.1, 0.6, -0.3], [0.5, -0.2, 0.0]], [[-0.4, 0.3, 0.2], [0.7, 0.1, -0.5]]]]
    )
    lp = logits.log_softmax(-1)[0]
    p = lp.exp()
    likelihood = p[0, 0, 1] * p[0, 1, 0] * p[1, 1, 0] + p[0, 0, 0] * p[1, 0, 1] * p[1, 1, 0]
    loss = rnnt_loss(logits, torch.tensor([[1]]), torch.tensor([2]), torch.tensor([1]))
    assert loss.item() == pytest.approx(-math.log(likelihood.item()), abs=1e-6)


def test_single_frame_empty_label_is_blank_probability():
    logits = torch.randn(1, 1, 1, 5)
    loss = rnnt_loss(logits, torch.zeros(1, 0, dtype=torch.long), torch.tensor([1]), torch.tensor([0]), blank=2)
    assert loss.item() == pytest.approx(-logits.log_softmax(-1)[0, 0, 0, 2].item(), abs=1e-6)


def test_padding_does_not_change_an_utterance_loss():
    logits, targets, frames, labels = random_batch(batch=3, frames=10, labels=4, seed=3)
    frames[2], labels[2] = 6, 2
    full = rnnt_loss(logits, targets, frames, labels, reduction="none")[2]
    alone = rnnt_loss(logits[2:, :6, :3], targets[2:, :2], frames[2:], labels[2:], reduction="none")[0]
    assert full.item() == pytest.approx(alone.item(), abs=1e-5)


def test_gradcheck_float64():
    logits, targets, frames, labels = random_batch(batch=3, frames=4, labels=3, vocab=5, dtype=torch.float64, seed=5)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: rnnt_loss(x, targets, frames, labels, blank=0, reduction="sum"), (logits,), eps=1e-6, atol=1e-5
    )


def test_reductions_and_finite_gradients():
    logits, targets, frames, labels = random_batch(seed=11)
    logits.requires_grad_(True)
    per_utt = rnnt_loss(logits, targets, frames, labels, reduction="none")
    assert rnnt_loss(logits, targets, frames, labels, reduction="mean").item() == pytest.approx(per_utt.mean().item(), rel=1e-6)
    per_label = rnnt_loss(logits, targets, frames, labels, reduction="mean_per_label")
    assert per_label.item() == pytest.approx(per_utt.sum().item() / (labels.sum() + len(labels)).item(), rel=1e-6)
    per_label.backward()
    assert torch.isfinite(logits.grad).all()


def test_bad_lengths_are_rejected_with_the_range():
    logits, targets, frames, labels = random_batch(frames=5)
    frames[0] = 6
    with pytest.raises(ValueError, match=r"frame_lengths must be in 1..5"):
        rnnt_loss(logits, targets, frames, labels)


def test_confident_model_gradients_have_no_denormals_and_match_torchaudio():
    # A confident joint network: softmax tails of exp(-100) underflow into float32
    # denormals, which make the upstream CPU matmuls several times slower.
    logits, targets, frames, labels = random_batch(batch=4, frames=20, labels=5, vocab=30, seed=3)
    logits = (logits * 60).requires_grad_()
    rnnt_loss(logits, targets, frames, labels, reduction="sum").backward()
    ours = logits.grad
    tiny = torch.finfo(torch.float32).tiny
    assert not ((ours != 0) & (ours.abs() < tiny)).any()

    reference = logits.detach().clone().requires_grad_()
    torchaudio_rnnt(reference, targets, frames, labels, blank=0).sum().backward()
    assert ((reference.grad != 0) & (reference.grad.abs() < tiny)).any()  # the case is real
    torch.testing.assert_close(ours, reference.grad, atol=1e-3, rtol=1e-3)  # float32 at 60x
    exact = logits.detach().double().requires_grad_()  # float64: nothing to flush
    rnnt_loss(exact, targets, frames, labels, reduction="sum").backward()
    torch.testing.assert_close(ours, exact.grad.float(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("normalised", [True, False])
def test_lattice_backward_equals_autograd_through_the_recursion(normalised):
    from streamasr.losses.transducer import (
        transducer_log_likelihood,
        transducer_log_likelihood_autograd,
    )

    generator = torch.Generator().manual_seed(3)
    batch, frames, labels = 5, 9, 6
    if normalised:  # blank/emit from a softmax over 4 "other" symbols
        logp = torch.randn(batch, frames, labels + 1, 6, generator=generator, dtype=torch.float64).log_softmax(-1)
        blank, emit = logp[..., 0], logp[:, :, :labels, 1]
    else:  # arbitrary arc weights, as mutual_information_recursion allows
        blank = torch.randn(batch, frames, labels + 1, generator=generator, dtype=torch.float64) * 3
        emit = torch.randn(batch, frames, labels, generator=generator, dtype=torch.float64) * 3
    # padding far outside any sensible range must not leak into values or gradients
    frame_lengths = torch.tensor([9, 1, 4, 7, 2])
    label_lengths = torch.tensor([6, 0, 3, 6, 1])
    for b in range(batch):
        blank[b, frame_lengths[b]:] = 400.0
        emit[b, frame_lengths[b]:] = 400.0
        emit[b, :, label_lengths[b]:] = 300.0
    ours_inputs = [blank.clone().requires_grad_(), emit.clone().requires_grad_()]
    ref_inputs = [blank.clone().requires_grad_(), emit.clone().requires_grad_()]
    weights = torch.linspace(0.5, 2.0, batch, dtype=torch.float64)
    ours = transducer_log_likelihood(*ours_inputs, frame_lengths, label_lengths)
    reference = transducer_log_likelihood_autograd(*ref_inputs, frame_lengths, label_lengths)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-10)
    (ours * weights).sum().backward()
    (reference * weights).sum().backward()
    for mine, theirs in zip(ours_inputs, ref_inputs):
        assert torch.isfinite(mine.grad).all()
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=0, atol=1e-10)
    # arcs past an utterance's lengths get exactly zero gradient
    assert (ours_inputs[0].grad[1, 1:] == 0).all() and (ours_inputs[1].grad[2, :, 3:] == 0).all()


def test_lattice_gradcheck_with_variable_lengths():
    from streamasr.losses.transducer import transducer_log_likelihood

    generator = torch.Generator().manual_seed(8)
    blank = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    emit = torch.randn(3, 5, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    frames, labels = torch.tensor([5, 2, 3]), torch.tensor([3, 1, 0])
    assert torch.autograd.gradcheck(
        lambda b, e: transducer_log_likelihood(b, e, frames, labels), (blank, emit), eps=1e-6, atol=1e-6
    )
