"""RNN-T (transducer) loss in pure PyTorch, for CPU and GPU.

Why our own: SpeechBrain 1.1.2's ``transducer_loss`` runs only on CUDA (Numba), and
torchaudio 2.9's ``rnnt_loss`` is deprecated and slow on CPU. Here the joint network's
log-probabilities are reduced to two small lattices (blank and emit, ``[B, T, U+1]``)
with one ``logsumexp`` over the vocabulary, and the forward variable is computed one
frame at a time: within a frame the recursion along the label axis is a prefix sum in
the log semiring, so each frame is a ``logcumsumexp`` over all labels at once; the
gradient comes from the matching backward recursion (arc posteriors), not from autograd
through the frame loop. There is no Python loop over lattice cells. ``benchmarks/`` compares
it with torchaudio.

Denormals: once a model is confident, most softmax probabilities of the joint output
fall below float32's smallest normal number (1.2e-38), and so do the matching
gradient entries. CPU matrix products on denormal inputs are many times slower: the
joint network's backward pass took 2.4x longer with late-training weights than with
fresh ones (0.48 s vs 0.20 s, small config, 13 s batch, 2 cores), which made training
steps slow down epoch after epoch. ``torch.set_flush_denormal`` does not fix it (it
only sets the flag of the calling thread, not of the intra-op worker threads), so the
gradient leaving the loss is flushed explicitly (``flush_denormal_grad``): entries
below 1e-30 in magnitude become 0, which changes no gradient by a measurable amount.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

DENORMAL_FLUSH_THRESHOLD = 1e-30


class _FlushDenormalGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(grad.abs() < DENORMAL_FLUSH_THRESHOLD, 0.0)


def flush_denormal_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Identity in the forward pass; in the backward pass, gradient entries smaller
    than 1e-30 in magnitude are set to 0 so that no denormal number reaches the
    (much slower on CPU) matrix products upstream. See the module docstring."""
    if not tensor.requires_grad:
        return tensor
    return _FlushDenormalGrad.apply(tensor)


def transducer_lattice(
    logits: torch.Tensor, targets: torch.Tensor, blank: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blank and emission log-probabilities of every lattice node.

    Arguments
    ---------
    logits: ``[B, T, U+1, V]`` joint network outputs (unnormalised).
    targets: ``[B, U]`` label ids (padding values are ignored by the loss).
    blank: index of the blank symbol in the vocabulary.

    Returns
    -------
    blank_logp: ``[B, T, U+1]``, log P(blank | t, u).
    emit_logp: ``[B, T, U]``, log P(targets[u] | t, u).
    """
    batch, frames, labels_plus_one, _ = logits.shape
    labels = labels_plus_one - 1
    if targets.shape[1] < labels:
        raise ValueError(
            f"targets have {targets.shape[1]} labels but logits have U+1={labels_plus_one}"
        )
    targets = targets[:, :labels].long()
    normaliser = torch.logsumexp(logits, dim=-1)  # [B, T, U+1]
    blank_logp = logits[..., blank] - normaliser
    index = targets[:, None, :, None].expand(batch, frames, labels, 1)
    emit_logp = logits[:, :, :labels, :].gather(-1, index).squeeze(-1) - normaliser[:, :, :labels]
    return blank_logp, emit_logp


def transducer_log_likelihood(
    blank_logp: torch.Tensor,
    emit_logp: torch.Tensor,
    frame_lengths: torch.Tensor,
    label_lengths: torch.Tensor,
) -> torch.Tensor:
    """log P(labels | frames) summed over all alignments, per utterance: ``[B]``.

    ``blank_logp`` is ``[B, T, U+1]``, ``emit_logp`` ``[B, T, U]``; lengths are ``[B]``
    integer tensors (frames >= 1). Positions past an utterance's lengths never influence
    its result (and get zero gradient). Computed in float64 (the lattices are small; sums
    over hundreds of nodes would lose precision in float32).

    Forward variables frame by frame, one ``logcumsumexp`` per frame; the gradient comes
    from the backward variables (``_LatticeLogLikelihood``), not from autograd through
    the frame loop: the same numbers, 3x less time for the lattice (see that class).
    """
    return _LatticeLogLikelihood.apply(
        blank_logp.double(), emit_logp.double(), frame_lengths.long(), label_lengths.long()
    )


def transducer_log_likelihood_autograd(
    blank_logp: torch.Tensor,
    emit_logp: torch.Tensor,
    frame_lengths: torch.Tensor,
    label_lengths: torch.Tensor,
) -> torch.Tensor:
    """The same value as ``transducer_log_likelihood``, differentiated by autograd
    through the frame loop. Not used in training: it is the reference that the
    forward-backward gradient is tested against, and the baseline of
    ``benchmarks/lattice_gradient.py``."""
    blank_logp, emit_logp = blank_logp.double(), emit_logp.double()
    batch = blank_logp.shape[0]
    prefix = _label_prefix(emit_logp)
    alphas = [prefix[:, 0]]
    for frame in range(1, blank_logp.shape[1]):
        stay = alphas[-1] + blank_logp[:, frame - 1]
        alphas.append(prefix[:, frame] + torch.logcumsumexp(stay - prefix[:, frame], dim=1))
    alpha = torch.stack(alphas, dim=1)  # [B, T, U+1]
    rows = torch.arange(batch, device=alpha.device)
    last_frame, last_label = frame_lengths.long() - 1, label_lengths.long()
    return alpha[rows, last_frame, last_label] + blank_logp[rows, last_frame, last_label]


def _label_prefix(emit_logp: torch.Tensor) -> torch.Tensor:
    """``C[b, t, u] = sum_{j<u} emit[b, t, j]``: ``[B, T, U+1]``."""
    batch, frames, _ = emit_logp.shape
    zero = emit_logp.new_zeros(batch, frames, 1)
    return torch.cat([zero, emit_logp.cumsum(dim=2)], dim=2)


def _reverse_logcumsumexp(values: torch.Tensor) -> torch.Tensor:
    """``out[..., u] = logsumexp(values[..., u:])``."""
    return torch.logcumsumexp(values.flip(-1), dim=-1).flip(-1)


class _LatticeLogLikelihood(torch.autograd.Function):
    """Transducer lattice log-likelihood with a forward-backward gradient.

    Why our own backward: autograd through the frame loop records ~10 small ops per
    frame and replays them one by one; on the small recipe this was ~16 % of a training
    step (two lattices per step with the pruned loss). The gradient of a log-likelihood
    with respect to an arc weight is that arc's posterior occupancy, so one backward
    recursion (the same ``logcumsumexp`` trick, run from the end) gives all of it:

        beta[t, u] = logaddexp(blank[t, u] + beta[t+1, u], emit[t, u] + beta[t, u+1])
        dLL/dblank[t, u] = exp(alpha[t, u] + blank[t, u] + beta[t+1, u] - LL)
        dLL/demit[t, u]  = exp(alpha[t, u] + emit[t, u] + beta[t, u+1] - LL)

    with ``beta[T_b, U_b] = 0`` as each utterance's end. Tested against autograd
    through the plain recursion (float64, 1e-10) and with ``gradcheck``.
    """

    @staticmethod
    def forward(ctx: Any, blank_logp: torch.Tensor, emit_logp: torch.Tensor, frame_lengths: torch.Tensor,
                label_lengths: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = blank_logp.shape
        prefix = _label_prefix(emit_logp)
        # alpha[t, u] = C[t, u] + logcumsumexp_k (alpha[t-1, k] + blank[t-1, k] - C[t, k])
        alpha = torch.empty_like(blank_logp)
        alpha[:, 0] = prefix[:, 0]
        for frame in range(1, frames):
            stay = alpha[:, frame - 1] + blank_logp[:, frame - 1] - prefix[:, frame]
            alpha[:, frame] = prefix[:, frame] + torch.logcumsumexp(stay, dim=1)
        rows = torch.arange(batch, device=alpha.device)
        last_frame = frame_lengths - 1
        log_likelihood = alpha[rows, last_frame, label_lengths] + blank_logp[rows, last_frame, label_lengths]
        ctx.save_for_backward(blank_logp, emit_logp, frame_lengths, label_lengths, alpha, prefix,
                              log_likelihood)
        return log_likelihood

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple:
        blank_logp, emit_logp, frame_lengths, label_lengths, alpha, prefix, log_likelihood = ctx.saved_tensors
        batch, frames, labels_plus_one = blank_logp.shape
        minus_inf = float("-inf")
        rows = torch.arange(batch, device=blank_logp.device)
        label_index = torch.arange(labels_plus_one, device=blank_logp.device)
        past_last_label = (label_index[None, :] > label_lengths[:, None])[:, None, :]  # [B, 1, U+1]
        # The recursion runs along the label axis from the end, so it works on label-flipped
        # copies (one flip each instead of two per frame); nodes past U_b cannot be left.
        prefix_f = prefix.flip(-1)
        blank_f = blank_logp.masked_fill(past_last_label, minus_inf).flip(-1)
        # the end node: beta[T_b, U_b] = 0; nothing else is reachable after the last frame
        end_f = blank_logp.new_full((batch, labels_plus_one), minus_inf)
        end_f[rows, labels_plus_one - 1 - label_lengths] = 0.0
        beta_f = torch.empty_like(blank_logp)  # beta[t, u], labels flipped
        beta_next_f = torch.empty_like(blank_logp)  # beta[t+1, u] as used at frame t
        following = end_f
        for frame in range(frames - 1, -1, -1):
            following = torch.where((frame_lengths - 1 == frame)[:, None], end_f, following)
            beta_next_f[:, frame] = following
            # beta[t, u] = -C[t, u] + logsumexp_{k >= u} (C[t, k] + blank[t, k] + beta[t+1, k])
            following = torch.logcumsumexp(prefix_f[:, frame] + blank_f[:, frame] + following, dim=1) \
                - prefix_f[:, frame]
            beta_f[:, frame] = following
        beta, beta_next = beta_f.flip(-1), beta_next_f.flip(-1)
        total = log_likelihood[:, None, None]
        # Frames past T_b hold values of a recursion that no path reaches: masked before
        # exp (they may exceed LL by more than exp can hold, and inf * 0 is NaN).
        past_last_frame = (torch.arange(frames, device=rows.device)[None, :, None]
                           >= frame_lengths[:, None, None])
        scale = grad_output[:, None, None]
        grad_blank = (alpha + blank_logp + beta_next - total).masked_fill(past_last_frame, minus_inf).exp() * scale
        grad_emit = (alpha[:, :, :-1] + emit_logp + beta[:, :, 1:] - total).masked_fill(
            past_last_frame, minus_inf).exp() * scale
        return grad_blank, grad_emit, None, None


def float32_loss(function: Callable) -> Callable:
    """Run a loss with autocast off, so mixed-precision training (``--precision=bf16``
    or ``fp16``) never computes the lattice recursions or their normalisers in 16 bits;
    the inputs are cast to float32 inside the functions themselves."""
    import functools

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return function(*args, **kwargs)

    return wrapper


@float32_loss
def rnnt_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    frame_lengths: torch.Tensor,
    label_lengths: torch.Tensor,
    blank: int = 0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Transducer negative log-likelihood, same semantics as torchaudio's ``rnnt_loss``.

    Arguments
    ---------
    logits: ``[B, T, U+1, V]`` joint outputs (any float dtype; computed in float32+).
    targets: ``[B, U]`` integer labels.
    frame_lengths: ``[B]`` valid encoder frames per utterance (1..T).
    label_lengths: ``[B]`` valid labels per utterance (0..U).
    blank: blank index.
    reduction: ``"none"`` ([B]), ``"sum"``, ``"mean"`` (over utterances) or
        ``"mean_per_label"`` (sum divided by the total number of labels + utterances,
        i.e. per emitted symbol including the final blank).
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must be [B, T, U+1, V], got shape {tuple(logits.shape)}")
    if frame_lengths.min() < 1 or frame_lengths.max() > logits.shape[1]:
        raise ValueError(f"frame_lengths must be in 1..{logits.shape[1]}, got {frame_lengths}")
    if label_lengths.min() < 0 or label_lengths.max() > logits.shape[2] - 1:
        raise ValueError(f"label_lengths must be in 0..{logits.shape[2] - 1}, got {label_lengths}")
    dtype = torch.promote_types(logits.dtype, torch.float32)  # never below float32
    blank_logp, emit_logp = transducer_lattice(flush_denormal_grad(logits).to(dtype), targets, blank)
    nll = -transducer_log_likelihood(blank_logp, emit_logp, frame_lengths, label_lengths)
    return reduce_loss(nll.to(dtype), label_lengths, reduction)


def reduce_loss(nll: torch.Tensor, label_lengths: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-utterance losses ``[B]``: ``none``, ``sum``, ``mean`` (over
    utterances) or ``mean_per_label`` (sum / (labels + utterances), i.e. per emitted
    symbol including the final blank)."""
    if reduction == "none":
        return nll
    if reduction == "sum":
        return nll.sum()
    if reduction == "mean":
        return nll.mean()
    if reduction == "mean_per_label":
        return nll.sum() / (label_lengths.sum() + len(label_lengths)).clamp(min=1)
    raise ValueError(f"unknown reduction {reduction!r} (none, sum, mean, mean_per_label)")
