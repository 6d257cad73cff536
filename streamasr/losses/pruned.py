"""Pruned RNN-T loss (arXiv 2206.13236) in pure PyTorch, with k2's function semantics.

Why our own: k2 and fast_rnnt, the only implementations, need compiled extensions that
cannot be installed here (no wheel for this Python/torch, sdists that download sources
while building). This module needs nothing but PyTorch, runs on any device and is
differentiable by autograd; nothing loops over lattice cells (the recursion runs one
frame at a time, vectorised over the batch and all symbol positions, see
``streamasr.losses.transducer.transducer_log_likelihood``).

How pruning works, in three steps (``PrunedTransducerLoss`` runs them all):

1. ``rnnt_loss_simple``: a cheap transducer loss whose joiner is the *sum* of an
   acoustic logit vector ``am[b, t]`` and a linguistic one ``lm[b, s]`` (the
   normaliser of every lattice node is one matrix product, no ``[B, T, S+1, V]``
   tensor exists). Its occupation gradients tell which symbol positions each frame
   is likely to be aligned with.
2. ``get_rnnt_prune_ranges``: for each frame, a window of ``s_range`` consecutive
   symbol positions holding most of that occupation, constrained so that the windows
   still connect the start of the lattice to its end.
3. ``do_rnnt_pruning`` + the real joiner on ``[B, T, s_range, J]`` inputs, and
   ``rnnt_loss_pruned``: the exact transducer loss restricted to those windows.

Layouts follow k2: ``px`` is ``[B, S, T+1]`` (log-prob of emitting symbol ``s`` at
frame ``t``; the extra last column is ``-inf``), ``py`` is ``[B, S+1, T]`` (log-prob
of the termination symbol, i.e. blank, at ``(s, t)``), ``boundary`` is ``[B, 4]``
holding ``(0, 0, S_b, T_b)`` per sequence. Only the "regular" RNN-T topology
(any number of symbols per frame) is implemented; begin offsets must be 0.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import torch

from streamasr.losses.transducer import (
    DENORMAL_FLUSH_THRESHOLD,
    float32_loss,
    reduce_loss,
    transducer_log_likelihood,
)

# Log-weight given to pruned-away lattice arcs. Finite on purpose: the frame recursion
# subtracts prefix sums of emission log-probs, and -inf - -inf would be NaN. Paths
# through such an arc weigh exp(-1e5) = 0 in float64; prefix sums stay below 1e5 * S,
# far inside float64's exact range for any realistic S.
PRUNED_LOGP = -1.0e5


# ------------------------------------------------------------------------ helpers
def _check_boundary(boundary: Optional[torch.Tensor], batch: int, symbols: int, frames: int,
                    device) -> torch.Tensor:
    """``[B, 4]`` long tensor ``(0, 0, S_b, T_b)``, validated (None = full sizes)."""
    if boundary is None:
        boundary = torch.zeros(batch, 4, dtype=torch.long, device=device)
        boundary[:, 2] = symbols
        boundary[:, 3] = frames
        return boundary
    boundary = boundary.to(device=device, dtype=torch.long)
    if boundary.shape != (batch, 4):
        raise ValueError(f"boundary must be [B, 4] = [{batch}, 4], got {tuple(boundary.shape)}")
    if (boundary[:, :2] != 0).any():
        raise ValueError("boundary begin offsets (columns 0 and 1) must be 0")
    if boundary[:, 2].min() < 0 or boundary[:, 2].max() > symbols:
        raise ValueError(f"boundary symbol counts must be in 0..{symbols}, got {boundary[:, 2].tolist()}")
    if boundary[:, 3].min() < 1 or boundary[:, 3].max() > frames:
        raise ValueError(f"boundary frame counts must be in 1..{frames}, got {boundary[:, 3].tolist()}")
    return boundary


def boundary_from_lengths(frame_lengths: torch.Tensor, label_lengths: torch.Tensor) -> torch.Tensor:
    """k2's ``boundary`` ``[B, 4]`` from per-utterance frame and label counts."""
    zeros = torch.zeros_like(frame_lengths, dtype=torch.long)
    return torch.stack([zeros, zeros, label_lengths.long(), frame_lengths.long()], dim=1)


def _padded_symbols(symbols: torch.Tensor, boundary: torch.Tensor, fill: int) -> torch.Tensor:
    """``symbols`` with every position past ``S_b`` set to ``fill`` (a valid index)."""
    positions = torch.arange(symbols.shape[1], device=symbols.device)
    return torch.where(positions[None, :] < boundary[:, 2:3], symbols.long(), fill)


# --------------------------------------------------------------------- simple loss
def get_rnnt_logprobs(lm: torch.Tensor, am: torch.Tensor, symbols: torch.Tensor,
                      termination_symbol: int, boundary: Optional[torch.Tensor] = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``px`` ``[B, S, T+1]`` and ``py`` ``[B, S+1, T]`` of the factorised joiner
    ``log_softmax(am[b, t] + lm[b, s])``, without forming the ``[B, T, S+1, C]`` tensor.

    lm: ``[B, S+1, C]`` prediction-network logits (row ``s`` = after ``s`` symbols).
    am: ``[B, T, C]`` encoder logits. symbols: ``[B, S]``.
    """
    batch, frames, vocab = am.shape
    if lm.dim() != 3 or lm.shape[0] != batch or lm.shape[2] != vocab:
        raise ValueError(f"lm must be [B, S+1, C] = [{batch}, S+1, {vocab}], got {tuple(lm.shape)}")
    num_symbols = lm.shape[1] - 1
    if symbols.shape != (batch, num_symbols):
        raise ValueError(f"symbols must be [B, S] = [{batch}, {num_symbols}], got {tuple(symbols.shape)}")
    boundary = _check_boundary(boundary, batch, num_symbols, frames, am.device)
    symbols = _padded_symbols(symbols, boundary, termination_symbol)

    am_max = am.max(dim=2, keepdim=True).values  # [B, T, 1]
    lm_max = lm.max(dim=2, keepdim=True).values  # [B, S+1, 1]
    probs = torch.matmul((am - am_max).exp(), (lm - lm_max).exp().transpose(1, 2))  # [B, T, S+1]
    normalisers = (probs + torch.finfo(probs.dtype).tiny).log() + am_max + lm_max.transpose(1, 2)

    am_sym = am.gather(2, symbols[:, None, :].expand(batch, frames, num_symbols))  # [B, T, S]
    lm_sym = lm[:, :num_symbols].gather(2, symbols.unsqueeze(2)).squeeze(2)  # [B, S]
    px = am_sym + lm_sym[:, None, :] - normalisers[:, :, :num_symbols]  # [B, T, S]
    py = am[:, :, termination_symbol].unsqueeze(2) + lm[:, :, termination_symbol].unsqueeze(1) - normalisers
    px = torch.cat([px.transpose(1, 2), px.new_full((batch, num_symbols, 1), float("-inf"))], dim=2)
    return px, py.transpose(1, 2)


def mutual_information_recursion(px: torch.Tensor, py: torch.Tensor,
                                 boundary: Optional[torch.Tensor] = None) -> torch.Tensor:
    """log of the total weight of all lattice paths from ``(0, 0)`` to ``(S_b, T_b)``:
    ``p[s, t] = logaddexp(p[s-1, t] + px[s-1, t], p[s, t-1] + py[s, t-1])``; ``[B]``.

    px: ``[B, S, T+1]`` (the last column is never used: regular RNN-T), py: ``[B, S+1, T]``.
    ``-inf`` entries are allowed (treated as weight 0). Float64 internally.
    """
    batch, num_symbols_plus_one, frames = py.shape
    boundary = _check_boundary(boundary, batch, num_symbols_plus_one - 1, frames, py.device)
    emit = px[:, :, :frames].transpose(1, 2).clamp(min=PRUNED_LOGP)  # [B, T, S]
    stay = py.transpose(1, 2).clamp(min=PRUNED_LOGP)  # [B, T, S+1]
    return transducer_log_likelihood(stay, emit, boundary[:, 3], boundary[:, 2])


@float32_loss
def rnnt_loss_simple(lm: torch.Tensor, am: torch.Tensor, symbols: torch.Tensor,
                     termination_symbol: int, boundary: Optional[torch.Tensor] = None,
                     reduction: str = "mean", return_grad: bool = False
                     ) -> torch.Tensor | tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Transducer loss of the factorised joiner ``log_softmax(am[b, t] + lm[b, s])``.

    Arguments
    ---------
    lm: ``[B, S+1, C]`` prediction-network logits. am: ``[B, T, C]`` encoder logits.
    symbols: ``[B, S]`` label ids (entries past ``S_b`` are ignored).
    termination_symbol: the blank id. boundary: ``[B, 4]`` ``(0, 0, S_b, T_b)`` or None.
    reduction: ``none`` ``[B]`` / ``sum`` / ``mean`` / ``mean_per_label``.
    return_grad: also return ``(px_grad, py_grad)``, the derivatives of each sequence's
        log-likelihood with respect to ``px`` ``[B, S, T+1]`` and ``py`` ``[B, S+1, T]``,
        i.e. the occupation probabilities of the emission and blank arcs, which
        ``get_rnnt_prune_ranges`` consumes. They are detached.

    Returns the negative log-likelihood (reduced), and the gradients when asked.
    """
    px, py = get_rnnt_logprobs(lm, am, symbols, termination_symbol, boundary)
    boundary = _check_boundary(boundary, am.shape[0], symbols.shape[1], am.shape[1], am.device)
    if return_grad and not (px.requires_grad or py.requires_grad):
        px, py = px.detach().requires_grad_(), py.detach().requires_grad_()
    log_likelihood = mutual_information_recursion(px, py, boundary)
    loss = reduce_loss(-log_likelihood.to(px.dtype), boundary[:, 2], reduction)
    if not return_grad:
        return loss
    px_grad, py_grad = torch.autograd.grad(log_likelihood.sum(), (px, py), retain_graph=True)
    return loss, (px_grad.detach().to(px.dtype), py_grad.detach().to(py.dtype))


# ------------------------------------------------------------------------ pruning
def _monotonic_lower_bound(values: torch.Tensor) -> torch.Tensor:
    """The largest non-decreasing sequence below ``values`` (along the last axis):
    ``out[t] = min(values[t:])``."""
    return values.flip(-1).cummin(dim=-1).values.flip(-1)


def _adjust_pruning_lower_bound(s_begin: torch.Tensor, s_range: int) -> torch.Tensor:
    """Make window starts ``[B, T]`` valid: non-decreasing, starting at 0, and growing
    by at most ``s_range - 1`` per frame (so consecutive windows overlap and a path can
    cross from one frame to the next)."""
    frames = s_begin.shape[1]
    s_begin = _monotonic_lower_bound(s_begin)
    slope = (s_range - 1) * torch.arange(frames, device=s_begin.device)
    # s_begin[t+1] - s_begin[t] <= s_range - 1  <=>  slope - s_begin is non-decreasing
    relaxed = _monotonic_lower_bound(slope - s_begin).clamp(min=0)
    return slope - relaxed


def get_rnnt_prune_ranges(px_grad: torch.Tensor, py_grad: torch.Tensor,
                          boundary: torch.Tensor, s_range: int) -> torch.Tensor:
    """For every frame, the ``s_range`` consecutive symbol positions to keep: ``[B, T, s_range]``.

    px_grad: ``[B, S, T+1]``; py_grad: ``[B, S+1, T]`` (from ``rnnt_loss_simple``);
    boundary: ``[B, 4]``; s_range: window size (>= 2, so that a frame can emit a
    symbol and stay in its window; values above ``S`` keep everything).

    Each frame's window is the one holding the most occupation (emission + blank
    arcs leaving its nodes), then adjusted so that windows start at symbol 0, never
    move backwards, move forward by less than ``s_range`` per frame, and the last
    frame's window contains ``S_b`` (the lattice's end stays reachable). As in k2, a
    sequence with more than ``(s_range - 1) * T_b`` symbols has no path in any pruned
    lattice (its pruned loss is about 1e5); with 40 ms frames and ``s_range`` 5 that
    would take 100 tokens per second.
    """
    batch, num_symbols, frames_plus_one = px_grad.shape
    frames = py_grad.shape[2]
    if frames_plus_one != frames + 1 or py_grad.shape != (batch, num_symbols + 1, frames):
        raise ValueError(
            f"px_grad must be [B, S, T+1] and py_grad [B, S+1, T]; got {tuple(px_grad.shape)} "
            f"and {tuple(py_grad.shape)}"
        )
    if s_range < 2:
        raise ValueError(f"s_range must be >= 2 (a frame must be able to emit a symbol), got {s_range}")
    boundary = _check_boundary(boundary, batch, num_symbols, frames, px_grad.device)
    s_range = min(s_range, num_symbols + 1)

    occupation = py_grad + torch.cat([px_grad[:, :, :frames], px_grad.new_zeros(batch, 1, frames)], dim=1)
    cumulative = torch.cat([occupation.new_zeros(batch, 1, frames), occupation.cumsum(dim=1)], dim=1)
    window_mass = cumulative[:, s_range:] - cumulative[:, :-s_range]  # [B, S+2-s_range, T]
    s_begin = window_mass.argmax(dim=1)  # [B, T]
    # From each sequence's last frame on, the window must end at S_b.
    last_window = (boundary[:, 2:3] - s_range + 1).clamp(min=0)
    frame_index = torch.arange(frames, device=px_grad.device)[None, :]
    s_begin = torch.where(frame_index < boundary[:, 3:4] - 1, s_begin, last_window)
    s_begin = _adjust_pruning_lower_bound(s_begin, s_range)
    return s_begin.unsqueeze(2) + torch.arange(s_range, device=px_grad.device)


def do_rnnt_pruning(am: torch.Tensor, lm: torch.Tensor, ranges: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Joiner inputs restricted to the kept nodes.

    am: ``[B, T, J]`` encoder side; lm: ``[B, S+1, J]`` prediction side;
    ranges: ``[B, T, R]``. Returns ``am_pruned`` and ``lm_pruned``, both ``[B, T, R, J]``
    (``am`` broadcast over the window, ``lm`` gathered at the window's positions).
    """
    batch, frames, s_range = ranges.shape
    dim = lm.shape[2]
    if am.shape[:2] != (batch, frames):
        raise ValueError(f"am must be [B, T, J] with B, T = {batch}, {frames}; got {tuple(am.shape)}")
    am_pruned = am.unsqueeze(2).expand(batch, frames, s_range, am.shape[2])
    index = ranges.reshape(batch, frames * s_range, 1).expand(batch, frames * s_range, dim)
    lm_pruned = lm.gather(1, index).reshape(batch, frames, s_range, dim)
    return am_pruned, lm_pruned


# Elements per slice when a [B, T, R, V] tensor is processed piecewise (4 MB in fp32).
_SLICE_ELEMENTS = 1 << 20


def _logsumexp_last(logits: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` over the last dimension, slice by slice, so that the temporary
    ``exp`` tensor never has the size of ``logits``."""
    flat = logits.reshape(-1, logits.shape[-1])
    out = flat.new_empty(flat.shape[0])
    step = max(1, _SLICE_ELEMENTS // max(1, flat.shape[1]))
    for start in range(0, flat.shape[0], step):
        out[start:start + step] = torch.logsumexp(flat[start:start + step], dim=1)
    return out.reshape(logits.shape[:-1])


class _PrunedNodeLogProbs(torch.autograd.Function):
    """``[B, T, R, V]`` logits -> blank and emission log-probabilities ``[B, T, R]``.

    Autograd through ``log_softmax`` + ``gather`` keeps a softmax-sized tensor for the
    backward pass and builds the gradient from three logits-sized pieces (softmax,
    zero-filled scatter of the emission gradient, zero-filled scatter of the blank
    gradient), plus the mask and copy of the denormal flush: ~6 tensors the size of the
    logits at the peak. This function saves only the logits (alive anyway) and writes
    the gradient into one new tensor, in place, slice by slice:
    ``grad = -softmax * (g_blank + g_emit)``, ``+ g_emit`` at the emitted symbol,
    ``+ g_blank`` at blank; entries below 1e-30 in magnitude are then set to 0, which
    keeps denormal numbers out of the gradient (see ``flush_denormal_grad``).
    """

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, window_symbols: torch.Tensor, blank: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        normalisers = _logsumexp_last(logits)
        emit = logits.gather(3, window_symbols.unsqueeze(3)).squeeze(3) - normalisers
        blank_logp = logits[..., blank] - normalisers
        ctx.save_for_backward(logits, normalisers, window_symbols)
        ctx.blank = blank
        return blank_logp, emit

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_blank: torch.Tensor, grad_emit: torch.Tensor) -> tuple:
        logits, normalisers, window_symbols = ctx.saved_tensors
        if grad_blank is None:
            grad_blank = torch.zeros_like(normalisers)
        if grad_emit is None:
            grad_emit = torch.zeros_like(normalisers)
        vocab = logits.shape[-1]
        grad = torch.empty_like(logits)
        flat_grad, flat_logits = grad.view(-1, vocab), logits.reshape(-1, vocab)
        flat_norm = normalisers.reshape(-1, 1)
        flat_blank, flat_emit = grad_blank.reshape(-1), grad_emit.reshape(-1)
        flat_symbols = window_symbols.reshape(-1, 1)
        step = max(1, _SLICE_ELEMENTS // max(1, vocab))
        for start in range(0, flat_grad.shape[0], step):
            end = start + step
            piece = flat_grad[start:end]
            torch.sub(flat_logits[start:end], flat_norm[start:end], out=piece).exp_()
            piece.mul_(-(flat_blank[start:end] + flat_emit[start:end]).unsqueeze(1))
            piece.scatter_add_(1, flat_symbols[start:end], flat_emit[start:end].unsqueeze(1))
            piece[:, ctx.blank].add_(flat_blank[start:end])
            piece.masked_fill_(piece.abs() < DENORMAL_FLUSH_THRESHOLD, 0.0)  # slice-sized temporaries
        return grad, None, None


@float32_loss
def rnnt_loss_pruned(logits: torch.Tensor, symbols: torch.Tensor, ranges: torch.Tensor,
                     termination_symbol: int, boundary: Optional[torch.Tensor] = None,
                     reduction: str = "mean") -> torch.Tensor:
    """Transducer loss on the pruned lattice.

    logits: ``[B, T, R, V]`` joiner outputs at the nodes ``ranges`` ``[B, T, R]``;
    symbols: ``[B, S]``; boundary: ``[B, 4]`` or None. Nodes outside the ranges get
    weight 0. With ``R >= S + 1`` this is exactly the full RNN-T loss.
    """
    batch, frames, s_range, vocab = logits.shape
    num_symbols = symbols.shape[1]
    if ranges.shape != (batch, frames, s_range):
        raise ValueError(f"ranges must be [B, T, R] = {[batch, frames, s_range]}, got {tuple(ranges.shape)}")
    boundary = _check_boundary(boundary, batch, num_symbols, frames, logits.device)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    logits = logits.to(dtype).contiguous()

    padded = _padded_symbols(symbols, boundary, termination_symbol)
    with_end = torch.cat([padded, padded.new_full((batch, 1), termination_symbol)], dim=1)  # [B, S+1]
    window_symbols = with_end.gather(1, ranges.reshape(batch, -1)).reshape(batch, frames, s_range)
    # [B, T, R] each; memory-lean backward (one logits-sized gradient tensor)
    blank, emit = _PrunedNodeLogProbs.apply(logits, window_symbols, termination_symbol)

    full_emit = emit.new_full((batch, frames, num_symbols + 1), PRUNED_LOGP).scatter(2, ranges, emit)
    full_blank = blank.new_full((batch, frames, num_symbols + 1), PRUNED_LOGP).scatter(2, ranges, blank)
    log_likelihood = transducer_log_likelihood(
        full_blank, full_emit[:, :, :num_symbols], boundary[:, 3], boundary[:, 2]
    )
    return reduce_loss(-log_likelihood.to(dtype), boundary[:, 2], reduction)


# ------------------------------------------------------------------------- module
@dataclasses.dataclass
class PrunedLossOutput:
    loss: torch.Tensor  # the weighted sum that is optimised
    simple: torch.Tensor  # rnnt_loss_simple (same reduction)
    pruned: torch.Tensor  # rnnt_loss_pruned (same reduction)
    simple_scale: float
    pruned_scale: float


class PrunedTransducerLoss(torch.nn.Module):
    """Simple + pruned RNN-T loss with icefall-style scheduling.

    Owns the two linear maps of the simple loss (``simple_am_proj``: encoder output ->
    vocabulary, ``simple_lm_proj``: prediction network output -> vocabulary). The
    real joiner is passed in: any callable taking ``[B, T, R, J]`` encoder-side and
    prediction-side inputs and returning ``[B, T, R, V]`` logits (SpeechBrain's
    ``Transducer_joint`` followed by the output ``Linear`` does).

    Scheduling (icefall): during the first ``warmup_steps`` optimizer steps the simple
    loss's scale falls linearly from 1 to ``simple_loss_scale`` while the pruned loss's
    rises from 0.1 to 1, because the pruning ranges are meaningless until the simple
    loss has learnt a rough alignment.
    """

    def __init__(self, encoder_dim: int, decoder_dim: int, vocab_size: int, blank: int = 0,
                 prune_range: int = 5, simple_loss_scale: float = 0.5, warmup_steps: int = 2000,
                 reduction: str = "mean_per_label"):
        super().__init__()
        if prune_range < 2:
            raise ValueError(f"prune_range must be >= 2, got {prune_range}")
        if not 0.0 <= simple_loss_scale <= 1.0:
            raise ValueError(f"simple_loss_scale must be in [0, 1], got {simple_loss_scale}")
        self.simple_am_proj = torch.nn.Linear(encoder_dim, vocab_size)
        self.simple_lm_proj = torch.nn.Linear(decoder_dim, vocab_size)
        self.blank = blank
        self.prune_range = prune_range
        self.simple_loss_scale = simple_loss_scale
        self.warmup_steps = warmup_steps
        self.reduction = reduction

    def scales(self, step: int) -> tuple[float, float]:
        """(simple, pruned) loss scales after ``step`` optimizer steps."""
        if self.warmup_steps <= 0 or step >= self.warmup_steps:
            return self.simple_loss_scale, 1.0
        progress = step / self.warmup_steps
        return 1.0 - progress * (1.0 - self.simple_loss_scale), 0.1 + 0.9 * progress

    def forward(self, encoder_out: torch.Tensor, decoder_out: torch.Tensor,
                joiner_enc: torch.Tensor, joiner_dec: torch.Tensor,
                joiner: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                targets: torch.Tensor, frame_lengths: torch.Tensor, label_lengths: torch.Tensor,
                step: int) -> PrunedLossOutput:
        """encoder_out ``[B, T, D_enc]`` / decoder_out ``[B, U+1, D_dec]`` feed the simple
        loss; joiner_enc ``[B, T, J]`` / joiner_dec ``[B, U+1, J]`` are the joiner's
        projected inputs, pruned and passed to ``joiner``; targets ``[B, U]``."""
        boundary = boundary_from_lengths(frame_lengths, label_lengths).to(targets.device)
        am = self.simple_am_proj(encoder_out).float()
        lm = self.simple_lm_proj(decoder_out).float()
        simple, (px_grad, py_grad) = rnnt_loss_simple(
            lm, am, targets, self.blank, boundary, reduction=self.reduction, return_grad=True
        )
        ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, self.prune_range)
        am_pruned, lm_pruned = do_rnnt_pruning(joiner_enc, joiner_dec, ranges)
        logits = joiner(am_pruned, lm_pruned)
        pruned = rnnt_loss_pruned(logits, targets, ranges, self.blank, boundary, self.reduction)
        simple_scale, pruned_scale = self.scales(step)
        loss = simple_scale * simple + pruned_scale * pruned
        return PrunedLossOutput(loss, simple, pruned, simple_scale, pruned_scale)
