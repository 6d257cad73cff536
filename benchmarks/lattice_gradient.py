#!/usr/bin/env python3
"""Transducer lattice gradient: autograd through the frame loop vs forward-backward.

    python benchmarks/lattice_gradient.py
    python benchmarks/lattice_gradient.py --shapes 4,100,30 16,250,60 --repeats 20

``transducer_log_likelihood`` (what both RNN-T losses use; two lattices per step with
the pruned loss) computes its gradient from the backward variables;
``transducer_log_likelihood_autograd`` is the same forward recursion differentiated by
autograd. For each ``B,T,U`` the two run interleaved on the same random lattice; the
table shows the median forward + backward time, the speed-up, and the largest gradient
difference (float64).
"""

from __future__ import annotations

import argparse
import time

import torch
from _interleaved import interleaved_medians

from streamasr.losses.transducer import transducer_log_likelihood, transducer_log_likelihood_autograd

DEFAULT_SHAPES = ["4,100,30", "8,50,15", "2,250,70", "16,250,60", "16,500,100"]


def lattice(batch: int, frames: int, labels: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logp = torch.randn(batch, frames, labels + 1, 8, generator=generator, dtype=torch.float64).log_softmax(-1)
    frame_lengths = torch.randint(max(1, frames // 2), frames + 1, (batch,), generator=generator)
    label_lengths = torch.randint(0, labels + 1, (batch,), generator=generator)
    frame_lengths[0], label_lengths[0] = frames, labels
    return logp[..., 0].contiguous(), logp[:, :, :labels, 1].contiguous(), frame_lengths, label_lengths


def timed(function, blank, emit, frame_lengths, label_lengths):
    blank = blank.clone().requires_grad_()
    emit = emit.clone().requires_grad_()
    start = time.perf_counter()
    function(blank, emit, frame_lengths, label_lengths).sum().backward()
    return time.perf_counter() - start, blank.grad, emit.grad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="B,T,U triples")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"threads={torch.get_num_threads()}, float64, median of {args.repeats} (after 1 warm-up)")
    print("| B, T, U | autograd ms | forward-backward ms | speed-up | max abs gradient difference |")
    print("|---|---|---|---|---|")
    for shape in args.shapes:
        batch, frames, labels = (int(value) for value in shape.split(","))
        inputs = lattice(batch, frames, labels)
        gradients = {}

        def run(function):
            def one_round(index: int) -> float:
                seconds, blank_grad, emit_grad = timed(function, *inputs)
                gradients[function] = (blank_grad, emit_grad)
                return seconds
            return one_round

        medians = interleaved_medians([("autograd", run(transducer_log_likelihood_autograd)),
                                       ("fb", run(transducer_log_likelihood))], args.repeats)
        (slow_blank, slow_emit), (fast_blank, fast_emit) = (gradients[transducer_log_likelihood_autograd],
                                                            gradients[transducer_log_likelihood])
        difference = torch.cat([(slow_blank - fast_blank).flatten(), (slow_emit - fast_emit).flatten()]).abs().max().item()
        slow, fast = medians["autograd"], medians["fb"]
        print(f"| {batch}, {frames}, {labels} | {slow * 1e3:.1f} | {fast * 1e3:.1f} | {slow / fast:.2f}x "
              f"| {difference:.1e} |")


if __name__ == "__main__":
    main()
