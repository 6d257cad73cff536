#!/usr/bin/env python3
"""Transducer loss speed and peak memory: torchaudio's full ``rnnt_loss`` vs ours.

    python benchmarks/rnnt_loss.py                      # the issue's grid, torchaudio vs pruned
    python benchmarks/rnnt_loss.py --quick --losses torchaudio,full,pruned

Every contender starts from the same random encoder-side logits ``am`` ``[B, T, V]`` and
prediction-side logits ``lm`` ``[B, U+1, V]`` and runs forward + backward to them, the
joiner being their sum:

- ``torchaudio``: the full ``[B, T, U+1, V]`` joint tensor, ``torchaudio.functional.rnnt_loss``;
- ``full``: the same joint tensor, ``streamasr.losses.rnnt_loss``;
- ``pruned``: ``streamasr.losses.pruned``: simple loss (with occupation gradients),
  pruning ranges, the joint tensor on ``s_range`` symbols per frame, pruned loss.

All contenders are measured side by side in one run and printed as a Markdown table
with ratios against torchaudio. Peak memory is the resident-set growth during the
calls on CPU (``ru_maxrss`` is monotonic, so each case runs in a fresh subprocess) and
``torch.cuda.max_memory_allocated`` growth on GPU.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
import warnings

import torch

QUICK = [(16, 100, 25, 256), (16, 250, 60, 500), (8, 500, 100, 500)]  # (B, T, U, V)
GRID = [(16, t, u, v) for t, u, v in itertools.product((100, 250, 500), (25, 60, 100), (256, 500, 1000))]


def make_inputs(batch, frames, labels, vocab, device):
    generator = torch.Generator().manual_seed(0)
    am = torch.randn(batch, frames, vocab, generator=generator).to(device)
    lm = torch.randn(batch, labels + 1, vocab, generator=generator).to(device)
    targets = torch.randint(1, vocab, (batch, labels), generator=generator).to(device)
    frame_lengths = torch.full((batch,), frames, dtype=torch.long, device=device)
    label_lengths = torch.full((batch,), labels, dtype=torch.long, device=device)
    return am, lm, targets, frame_lengths, label_lengths


def loss_fn(name, s_range):
    if name == "torchaudio":
        import torchaudio.functional as F

        def run(am, lm, targets, frames, labels):
            logits = am[:, :, None, :] + lm[:, None, :, :]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return F.rnnt_loss(logits, targets.int(), frames.int(), labels.int(), blank=0, reduction="sum")

        return run
    if name == "full":
        from streamasr.losses import rnnt_loss

        def run(am, lm, targets, frames, labels):
            return rnnt_loss(am[:, :, None, :] + lm[:, None, :, :], targets, frames, labels, 0, "sum")

        return run
    if name == "pruned":
        from streamasr.losses.pruned import (
            boundary_from_lengths,
            do_rnnt_pruning,
            get_rnnt_prune_ranges,
            rnnt_loss_pruned,
            rnnt_loss_simple,
        )

        def run(am, lm, targets, frames, labels):
            boundary = boundary_from_lengths(frames, labels)
            simple, (px_grad, py_grad) = rnnt_loss_simple(
                lm, am, targets, 0, boundary, reduction="sum", return_grad=True
            )
            ranges = get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range)
            am_pruned, lm_pruned = do_rnnt_pruning(am, lm, ranges)
            pruned = rnnt_loss_pruned(am_pruned + lm_pruned, targets, ranges, 0, boundary, "sum")
            return 0.5 * simple + pruned

        return run
    raise SystemExit(f"unknown loss {name!r} (torchaudio, full, pruned)")


def measure(name, shape, device, repeats, s_range):
    """Run in this process: median seconds and peak extra memory in MB."""
    import resource

    am, lm, *rest = make_inputs(*shape, device)
    am.requires_grad_(True)
    lm.requires_grad_(True)
    fn = loss_fn(name, s_range)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats + (1 if repeats > 1 else 0)):  # a warm-up call when repeating
        am.grad = lm.grad = None
        start = time.perf_counter()
        loss = fn(am, lm, *rest)
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if device == "cuda":
        peak_mb = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    times = sorted(times[1:] if repeats > 1 else times)
    return {"seconds": times[len(times) // 2], "peak_mb": peak_mb, "loss": float(loss)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--losses", default="torchaudio,pruned", help="comma list: torchaudio,full,pruned")
    parser.add_argument("--s-range", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 shapes instead of the 27-shape grid")
    parser.add_argument("--shape", help="one shape B,T,U,V")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, shape = args.worker[0], tuple(json.loads(args.worker[1]))
        print(json.dumps(measure(name, shape, args.device, args.repeats, args.s_range)))
        return
    names = args.losses.split(",")
    shapes = [tuple(map(int, args.shape.split(",")))] if args.shape else (QUICK if args.quick else GRID)
    print(f"device={args.device} threads={torch.get_num_threads()} repeats={args.repeats} "
          f"s_range={args.s_range}; forward + backward; ratios are torchaudio / ours")
    header = ["B, T, U, V"] + [f"{n} s" for n in names] + [f"{n} MB" for n in names]
    if "torchaudio" in names:
        header += [f"{n} speed-up" for n in names if n != "torchaudio"]
        header += [f"{n} memory ratio" for n in names if n != "torchaudio"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for shape in shapes:
        results = {}
        for name in names:
            out = subprocess.run(
                [sys.executable, __file__, "--device", args.device, "--repeats", str(args.repeats),
                 "--s-range", str(args.s_range), "--worker", name, json.dumps(shape)],
                capture_output=True, text=True,
            )
            if out.returncode != 0:
                tail = (out.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
                results[name] = {"seconds": float("nan"), "peak_mb": float("nan"), "error": tail}
            else:
                results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        row = [", ".join(map(str, shape))]
        row += [f"{results[n]['seconds']:.3f}" for n in names]
        row += [f"{results[n]['peak_mb']:.0f}" for n in names]
        if "torchaudio" in results:
            ta = results["torchaudio"]
            row += [f"{ta['seconds'] / results[n]['seconds']:.1f}x" for n in names if n != "torchaudio"]
            row += [f"{ta['peak_mb'] / max(results[n]['peak_mb'], 1):.1f}x" for n in names if n != "torchaudio"]
        print("| " + " | ".join(row) + " |", flush=True)
        for name, result in results.items():
            if "error" in result:
                print(f"  {name} failed on {shape}: {result['error']}", file=sys.stderr)


if __name__ == "__main__":
    main()
