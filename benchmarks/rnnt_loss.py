#!/usr/bin/env python3
"""Transducer loss speed and peak memory: torchaudio's ``rnnt_loss`` vs ours.

    python benchmarks/rnnt_loss.py [--repeats 3] [--device cpu]

Forward + backward on the same random logits, both measured side by side in one run
and printed as a table with the ratio. Peak memory is the largest resident-set growth
during the call on CPU (``ru_maxrss`` is monotonic, so each case runs in a fresh
subprocess) and ``torch.cuda.max_memory_allocated`` on GPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings

import torch

SHAPES = [  # (B, T, U, V)
    (16, 100, 25, 256),
    (16, 250, 60, 500),
    (8, 500, 100, 500),
]


def make_inputs(batch, frames, labels, vocab, device):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, frames, labels + 1, vocab, generator=generator).to(device)
    targets = torch.randint(1, vocab, (batch, labels), generator=generator, dtype=torch.int32).to(device)
    frame_lengths = torch.full((batch,), frames, dtype=torch.int32, device=device)
    label_lengths = torch.full((batch,), labels, dtype=torch.int32, device=device)
    return logits, targets, frame_lengths, label_lengths


def loss_fn(name):
    if name == "torchaudio":
        import torchaudio.functional as F

        def run(logits, targets, frames, labels):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return F.rnnt_loss(logits, targets, frames, labels, blank=0, reduction="sum")

        return run
    from streamasr.losses import rnnt_loss

    return lambda logits, targets, frames, labels: rnnt_loss(logits, targets, frames, labels, blank=0, reduction="sum")


def measure(name, shape, device, repeats):
    """Run in this process: returns seconds (median) and peak extra memory in MB."""
    import resource

    inputs = make_inputs(*shape, device)
    fn = loss_fn(name)
    logits = inputs[0].requires_grad_(True)
    times = []
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    for _ in range(repeats + 1):  # first call warms up
        logits.grad = None
        start = time.perf_counter()
        loss = fn(logits, *inputs[1:])
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if device == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    times = sorted(times[1:])
    return {"seconds": times[len(times) // 2], "peak_mb": peak_mb, "loss": float(loss)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, shape = args.worker[0], tuple(json.loads(args.worker[1]))
        print(json.dumps(measure(name, shape, args.device, args.repeats)))
        return
    print(f"device={args.device} threads={torch.get_num_threads()} repeats={args.repeats}")
    header = "| B, T, U, V | torchaudio s | ours s | speed-up | torchaudio MB | ours MB | memory ratio | loss diff |"
    print(header)
    print("|" + "---|" * 8)
    for shape in SHAPES:
        results = {}
        for name in ("torchaudio", "ours"):
            out = subprocess.run(
                [sys.executable, __file__, "--device", args.device, "--repeats", str(args.repeats),
                 "--worker", name, json.dumps(shape)],
                capture_output=True, text=True, check=True,
            )
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        ta, ours = results["torchaudio"], results["ours"]
        print(
            f"| {', '.join(map(str, shape))} | {ta['seconds']:.3f} | {ours['seconds']:.3f} | "
            f"{ta['seconds'] / ours['seconds']:.2f}x | {ta['peak_mb']:.0f} | {ours['peak_mb']:.0f} | "
            f"{ta['peak_mb'] / max(ours['peak_mb'], 1):.2f}x | {abs(ta['loss'] - ours['loss']) / abs(ta['loss']):.1e} |"
        )


if __name__ == "__main__":
    main()
