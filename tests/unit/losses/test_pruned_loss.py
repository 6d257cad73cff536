"""Pruned RNN-T in pure PyTorch with k2's semantics."""


import warnings

import pytest
import torch

from streamasr.losses import rnnt_loss
from streamasr.losses.pruned import (
    PrunedTransducerLoss,
    boundary_from_lengths,
    do_rnnt_pruning,
    get_rnnt_prune_ranges,
    rnnt_loss_pruned,
    rnnt_loss_simple,
)


def torchaudio_rnnt(logits, targets, frames, labels, blank):
    import torchaudio.functional as F

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return F.rnnt_loss(logits, targets.int(), frames.int(), labels.int(), blank=blank, reduction="none")


def make_batch(batch=5, frames=12, labels=6, vocab=11, blank=0, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    non_blank = torch.tensor([v for v in range(vocab) if v != blank])
    targets = non_blank[torch.randint(len(non_blank), (batch, labels), generator=generator)]
    frame_lengths = torch.randint(1, frames + 1, (batch,), generator=generator)
    label_lengths = torch.randint(0, labels + 1, (batch,), generator=generator)
    frame_lengths[0], label_lengths[0] = frames, labels
    if batch > 1:
        label_lengths[1] = 0  # U = 0 inside a batch
    am = torch.randn(batch, frames, vocab, generator=generator, dtype=dtype)
    lm = torch.randn(batch, labels + 1, vocab, generator=generator, dtype=dtype)
    return am, lm, targets, frame_lengths, label_lengths


def full_ranges(batch, frames, labels):
    return torch.arange(labels + 1).expand(batch, frames, labels + 1).contiguous()


@pytest.mark.parametrize("blank", [0, 3, 10])
def test_pruned_with_full_range_equals_torchaudio(blank):
    am, lm, targets, frames, labels = make_batch(blank=blank, seed=blank)
    logits = torch.randn(5, 12, 7, 11, generator=torch.Generator().manual_seed(1))
    boundary = boundary_from_lengths(frames, labels)
    ours = rnnt_loss_pruned(logits, targets, full_ranges(5, 12, 6), blank, boundary, reduction="none")
    reference = torchaudio_rnnt(logits, targets, frames, labels, blank)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-5)


def test_pruned_gradients_with_full_range_equal_torchaudio():
    _, _, targets, frames, labels = make_batch(seed=4)
    base = torch.randn(5, 12, 7, 11, generator=torch.Generator().manual_seed(2))
    ours = base.clone().requires_grad_()
    rnnt_loss_pruned(ours, targets, full_ranges(5, 12, 6), 0, boundary_from_lengths(frames, labels),
                     reduction="sum").backward()
    reference = base.clone().requires_grad_()
    torchaudio_rnnt(reference, targets, frames, labels, 0).sum().backward()
    torch.testing.assert_close(ours.grad, reference.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("blank", [0, 7])
def test_simple_loss_equals_full_loss_of_factorised_joiner(blank):
    am, lm, targets, frames, labels = make_batch(blank=blank, seed=5)
    boundary = boundary_from_lengths(frames, labels)
    simple = rnnt_loss_simple(lm, am, targets, blank, boundary, reduction="none")
    factorised = am[:, :, None, :] + lm[:, None, :, :]  # [B, T, U+1, V]
    torch.testing.assert_close(simple, torchaudio_rnnt(factorised, targets, frames, labels, blank),
                               atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(simple, rnnt_loss(factorised, targets, frames, labels, blank, "none"),
                               atol=1e-4, rtol=1e-5)


def test_simple_loss_occupation_gradients_are_arc_posteriors():
    am, lm, targets, frames, labels = make_batch(seed=6)
    boundary = boundary_from_lengths(frames, labels)
    _, (px_grad, py_grad) = rnnt_loss_simple(lm, am, targets, 0, boundary, return_grad=True)
    assert px_grad.shape == (5, 6, 13) and py_grad.shape == (5, 7, 12)
    assert (px_grad >= -1e-6).all() and (py_grad >= -1e-6).all()
    # Every path emits each of its S_b symbols once and takes T_b blanks.
    torch.testing.assert_close(px_grad.sum(dim=(1, 2)), labels.float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(py_grad.sum(dim=(1, 2)), frames.float(), atol=1e-4, rtol=0)


def test_gradcheck_simple_and_pruned_float64():
    am, lm, targets, frames, labels = make_batch(batch=3, frames=4, labels=3, vocab=5, seed=7,
                                                 dtype=torch.float64)
    boundary = boundary_from_lengths(frames, labels)
    am.requires_grad_()
    lm.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda l, a: rnnt_loss_simple(l, a, targets, 0, boundary, reduction="none"), (lm, am)
    )
    logits = torch.randn(3, 4, 2, 5, dtype=torch.float64, requires_grad=True)
    ranges = torch.tensor([[0, 1], [0, 1], [1, 2], [2, 3]]).expand(3, 4, 2).contiguous()
    full_boundary = boundary_from_lengths(torch.full((3,), 4), torch.full((3,), 3))
    assert torch.autograd.gradcheck(
        lambda x: rnnt_loss_pruned(x, targets, ranges, 0, full_boundary, reduction="none"), (logits,)
    )


def test_single_frame_and_no_labels():
    # T = 1, U = 0: the loss is -log P(blank) at the only node.
    logits = torch.randn(2, 1, 1, 6)
    targets = torch.zeros(2, 0, dtype=torch.long)
    ranges = torch.zeros(2, 1, 1, dtype=torch.long)
    loss = rnnt_loss_pruned(logits, targets, ranges, 2, None, reduction="none")
    torch.testing.assert_close(loss, -logits.log_softmax(-1)[:, 0, 0, 2])
    am, lm = torch.randn(2, 1, 6), torch.randn(2, 1, 6)
    simple = rnnt_loss_simple(lm, am, targets, 2, None, reduction="none")
    torch.testing.assert_close(simple, -(am + lm).log_softmax(-1)[:, 0, 2])


def test_padding_does_not_change_a_sequence_loss():
    am, lm, targets, frames, labels = make_batch(seed=8)
    boundary = boundary_from_lengths(frames, labels)
    logits = torch.randn(5, 12, 3, 11, generator=torch.Generator().manual_seed(3))
    _, (px_grad, py_grad) = rnnt_loss_simple(lm, am, targets, 0, boundary, return_grad=True)
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, 3)
    before = rnnt_loss_pruned(logits, targets, ranges, 0, boundary, reduction="none")
    simple_before = rnnt_loss_simple(lm, am, targets, 0, boundary, reduction="none")
    # Scribble over everything past each sequence's lengths.
    noisy_targets, noisy_logits, noisy_am = targets.clone(), logits.clone(), am.clone()
    for b in range(5):
        noisy_targets[b, labels[b]:] = 9
        noisy_logits[b, frames[b]:] = 50.0
        noisy_am[b, frames[b]:] = -30.0
    after = rnnt_loss_pruned(noisy_logits, noisy_targets, ranges, 0, boundary, reduction="none")
    simple_after = rnnt_loss_simple(lm, noisy_am, noisy_targets, 0, boundary, reduction="none")
    torch.testing.assert_close(before, after)
    torch.testing.assert_close(simple_before, simple_after)


@pytest.mark.parametrize("blank", [0, 4])
def test_sliced_memory_lean_backward_equals_autograd_of_log_softmax(blank, monkeypatch):
    """The hand-written backward of the pruned node log-probs (written slice by slice)
    gives autograd's gradients of log_softmax + gather, for any slice size."""
    import streamasr.losses.pruned as pruned

    _, _, targets, frames, labels = make_batch(seed=9, blank=blank)
    boundary = boundary_from_lengths(frames, labels)
    ranges = get_rnnt_prune_ranges(torch.rand(5, 6, 13), torch.rand(5, 7, 12), boundary, 3)
    base = torch.randn(5, 12, 3, 11, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def reference_loss(logits):
        logp = logits.log_softmax(dim=3)
        padded = torch.where(torch.arange(6)[None] < labels[:, None], targets, blank)
        with_end = torch.cat([padded, torch.full((5, 1), blank)], dim=1)
        window = with_end.gather(1, ranges.reshape(5, -1)).reshape(5, 12, 3)
        emit = logp.gather(3, window.unsqueeze(3)).squeeze(3)
        weights = torch.linspace(0.5, 2.0, emit.numel(), dtype=emit.dtype).reshape(emit.shape)
        return (weights * emit).sum() + (weights.flip(0) * logp[..., blank]).sum()

    reference = base.clone().requires_grad_()
    reference_loss(reference).backward()
    for slice_elements in (11, 50, 1 << 20):  # one row, several rows, everything at once
        monkeypatch.setattr(pruned, "_SLICE_ELEMENTS", slice_elements)
        ours = base.clone().requires_grad_()
        padded = torch.where(torch.arange(6)[None] < labels[:, None], targets, blank)
        with_end = torch.cat([padded, torch.full((5, 1), blank)], dim=1)
        window = with_end.gather(1, ranges.reshape(5, -1)).reshape(5, 12, 3)
        blank_logp, emit = pruned._PrunedNodeLogProbs.apply(ours, window, blank)
        weights = torch.linspace(0.5, 2.0, emit.numel(), dtype=emit.dtype).reshape(emit.shape)
        ((weights * emit).sum() + (weights.flip(0) * blank_logp).sum()).backward()
        torch.testing.assert_close(ours.grad, reference.grad, atol=1e-12, rtol=1e-10)


def test_confident_pruned_joint_has_no_denormal_gradients():
    _, _, targets, frames, labels = make_batch(seed=5)
    boundary = boundary_from_lengths(frames, labels)
    ranges = full_ranges(5, 12, 6)[:, :, :4].contiguous()
    logits = torch.randn(5, 12, 4, 11, generator=torch.Generator().manual_seed(6)) * 40  # very peaked
    ours = logits.clone().requires_grad_()
    rnnt_loss_pruned(ours, targets, ranges, 0, boundary, reduction="sum").backward()
    tiny = ours.grad[(ours.grad != 0) & (ours.grad.abs() < torch.finfo(torch.float32).tiny)]
    assert tiny.numel() == 0
    exact = logits.double().requires_grad_()
    rnnt_loss_pruned(exact, targets, ranges, 0, boundary, reduction="sum").backward()
    torch.testing.assert_close(ours.grad.double(), exact.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("s_range", [2, 3, 5])
def test_prune_ranges_keep_the_lattice_connected(s_range):
    am, lm, targets, frames, labels = make_batch(batch=6, frames=15, labels=9, seed=s_range)
    frames = torch.maximum(frames, labels)  # speech: no more tokens than 40 ms frames
    boundary = boundary_from_lengths(frames, labels)
    _, (px_grad, py_grad) = rnnt_loss_simple(lm, am, targets, 0, boundary, return_grad=True)
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range)
    assert ranges.shape == (6, 15, s_range)
    starts = ranges[:, :, 0]
    assert (starts[:, 0] == 0).all()
    steps = starts[:, 1:] - starts[:, :-1]
    assert (steps >= 0).all() and (steps <= s_range - 1).all()
    assert (ranges <= 9).all()
    for b in range(6):
        assert labels[b] in ranges[b, frames[b] - 1].tolist()  # the end is reachable
    # A finite pruned loss proves that some path survives for every sequence.
    logits = torch.randn(6, 15, s_range, 11)
    loss = rnnt_loss_pruned(logits, targets, ranges, 0, boundary, reduction="none")
    assert torch.isfinite(loss).all() and (loss < 1e4).all()


def test_pruning_keeps_most_of_the_probability_of_a_trained_like_lattice():
    # Peaky factorised joiner: the simple-loss occupation concentrates near the
    # diagonal; the pruned loss of the same (factorised) logits is then close to
    # the full loss, and never below it (pruning only removes paths).
    torch.manual_seed(9)
    batch, frames, labels, vocab = 4, 30, 10, 12
    targets = torch.randint(1, vocab, (batch, labels))
    am = torch.randn(batch, frames, vocab) * 0.1
    lm = torch.randn(batch, labels + 1, vocab) * 0.1
    for b in range(batch):  # frame t "says" label t // 3
        for t in range(frames):
            am[b, t, targets[b, min(t // 3, labels - 1)]] += 4.0
    frames_l, labels_l = torch.full((batch,), frames), torch.full((batch,), labels)
    boundary = boundary_from_lengths(frames_l, labels_l)
    _, (px_grad, py_grad) = rnnt_loss_simple(lm, am, targets, 0, boundary, return_grad=True)
    ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, 4)
    am_p, lm_p = do_rnnt_pruning(am, lm, ranges)
    pruned = rnnt_loss_pruned(am_p + lm_p, targets, ranges, 0, boundary, reduction="none")
    full = rnnt_loss(am[:, :, None] + lm[:, None], targets, frames_l, labels_l, 0, "none")
    assert (pruned >= full - 1e-4).all()
    assert (pruned - full).max() < 0.05 * full.min()


def test_do_rnnt_pruning_shapes_and_values():
    am, lm = torch.randn(2, 5, 3), torch.randn(2, 4, 3)
    ranges = torch.tensor([[0, 1], [0, 1], [1, 2], [2, 3], [2, 3]]).expand(2, 5, 2)
    am_p, lm_p = do_rnnt_pruning(am, lm, ranges)
    assert am_p.shape == lm_p.shape == (2, 5, 2, 3)
    torch.testing.assert_close(lm_p[1, 3, 1], lm[1, 3])
    torch.testing.assert_close(am_p[0, 4, 0], am[0, 4])


def test_bad_arguments_name_the_problem():
    am, lm, targets, frames, labels = make_batch()
    with pytest.raises(ValueError, match=r"lm must be \[B, S\+1, C\]"):
        rnnt_loss_simple(lm[:, :, :5], am, targets, 0)
    with pytest.raises(ValueError, match="boundary frame counts must be in 1..12"):
        rnnt_loss_simple(lm, am, targets, 0, boundary_from_lengths(frames + 20, labels))
    with pytest.raises(ValueError, match="s_range must be >= 2"):
        get_rnnt_prune_ranges(torch.zeros(5, 6, 13), torch.zeros(5, 7, 12), None, 1)
    with pytest.raises(ValueError, match="unknown reduction 'avg'"):
        rnnt_loss_simple(lm, am, targets, 0, reduction="avg")


def test_module_schedule_and_backward():
    torch.manual_seed(0)
    module = PrunedTransducerLoss(encoder_dim=8, decoder_dim=6, vocab_size=11, prune_range=3,
                                  simple_loss_scale=0.5, warmup_steps=100)
    assert module.scales(0) == (1.0, pytest.approx(0.1))
    assert module.scales(50) == (pytest.approx(0.75), pytest.approx(0.55))
    assert module.scales(100) == (0.5, 1.0)
    _, _, targets, frames, labels = make_batch(seed=11)
    encoder_out = torch.randn(5, 12, 8, requires_grad=True)
    decoder_out = torch.randn(5, 7, 6, requires_grad=True)
    enc_proj, dec_proj = torch.nn.Linear(8, 4), torch.nn.Linear(6, 4)
    out_lin = torch.nn.Linear(4, 11)
    out = module(encoder_out, decoder_out, enc_proj(encoder_out), dec_proj(decoder_out),
                 lambda a, b: out_lin(torch.tanh(a + b)), targets, frames, labels, step=100)
    torch.testing.assert_close(out.loss, 0.5 * out.simple + out.pruned)
    out.loss.backward()
    for tensor in (encoder_out, decoder_out, out_lin.weight, module.simple_am_proj.weight):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0


def test_equals_k2_when_available():
    k2 = pytest.importorskip("k2", reason="k2 is not installable here (no wheel for this Python/torch)")
    am, lm, targets, frames, labels = make_batch(seed=12)
    boundary = boundary_from_lengths(frames, labels)
    ours = rnnt_loss_simple(lm, am, targets, 0, boundary, reduction="none")
    theirs = k2.rnnt_loss_simple(lm, am, targets, 0, boundary, reduction="none")
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-5)
