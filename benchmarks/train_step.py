#!/usr/bin/env python3
"""Training step time of a recipe YAML: where a step's time goes (``--breakdown``), full
vs pruned transducer loss, or the lattice gradient by autograd vs forward-backward.

    python benchmarks/train_step.py --breakdown --data-folder data/synthetic \
        --recipe 4x=hparams/conformer_transducer_small.yaml \
        --recipe 8x=hparams/conformer_transducer_small.yaml,hparams/subsampling8.yaml
        # per-phase milliseconds and shares of real batches from the recipe's own
        # DataLoader, recipes in turn; audio seconds per second, padding, GFLOP/s
        # against a matmul on the same device (benchmarks/_step_breakdown.py)
    python benchmarks/train_step.py                                   # small config
    python benchmarks/train_step.py --manifest data/synthetic/train.csv --batch-seconds 12 \
        --checkpoint results/demo/save/CKPT+...        # real utterances, trained weights
    python benchmarks/train_step.py --compare lattice-gradient ...   # pruned loss both times;
        # lattice gradient through autograd (transducer_log_likelihood_autograd) vs ours

One batch (real utterances from a manifest, or seeded noise with random tokens), the
same initial weights for both objectives, steps interleaved full / pruned so that
machine noise hits both alike. A step is forward + loss + backward + AdamW update, at
epoch 3 (DCT chunking on, CTC on as in the YAML). Prints a table with the median
time per step and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from pathlib import Path
from unittest import mock

import speechbrain as sb
import torch
from _interleaved import interleaved_medians
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.batch import PaddedBatch

import streamasr.losses.pruned as pruned_losses
import streamasr.losses.transducer as losses
from streamasr.training import TransducerBrain

ROOT = Path(__file__).resolve().parent.parent


def noise_batch(seconds_each: list[float], tokens_per_second: float, vocab: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    items = []
    for index, seconds in enumerate(seconds_each):
        count = max(1, int(seconds * tokens_per_second))
        tokens = torch.randint(1, vocab, (count,), generator=generator)
        items.append({
            "id": f"noise{index}",
            "sig": torch.randn(int(16000 * seconds), generator=generator) * 0.05,
            "tokens_bos": torch.cat([torch.zeros(1, dtype=torch.long), tokens]),
            "tokens": tokens,
            "wrd": "X",
        })
    return PaddedBatch(items)


def manifest_batch(manifest: str, batch_seconds: float, tokenizer_path: str, seed: int = 0):
    import random

    import sentencepiece

    from streamasr.data.manifest import read_manifest, resolve_path

    tokenizer = sentencepiece.SentencePieceProcessor(model_file=tokenizer_path)
    data_root = str(Path(manifest).parent)
    rows = read_manifest(manifest)
    random.Random(seed).shuffle(rows)
    items, total = [], 0.0
    for row in rows:
        if total + float(row["duration"]) > batch_seconds:
            continue
        tokens = torch.tensor(tokenizer.encode_as_ids(row["wrd"]))
        items.append({
            "id": row["ID"],
            "sig": sb.dataio.dataio.read_audio(resolve_path(row["wav"], data_root)),
            "tokens_bos": torch.cat([torch.zeros(1, dtype=torch.long), tokens]),
            "tokens": tokens,
            "wrd": row["wrd"],
        })
        total += float(row["duration"])
        if total > batch_seconds - 1.0:
            break
    return PaddedBatch(items)


def make_brain(yaml_path: str, loss: str, output: str, state=None):
    with open(yaml_path, encoding="utf-8") as handle:
        hparams = load_hyperpyyaml(handle, {"transducer_loss": loss, "output_folder": output})
    if state is not None:
        hparams["model"].load_state_dict(state["model"])
        hparams["pruned_loss"].load_state_dict(state["pruned_loss"])
    brain = TransducerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"],
                            hparams=hparams, run_opts={"device": "cpu"})
    brain.hparams.epoch_counter.current = 3
    brain.optimizer_step = 10**6  # past every warm-up: steady-state scales
    optimizer = hparams["opt_class"]([p for p in brain.modules.parameters() if p.requires_grad])
    return brain, optimizer


def step(brain, optimizer, batch) -> float:
    start = time.perf_counter()
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


VARIANTS = {  # --compare: (label, transducer_loss, lattice function) x 2, baseline first
    "objectives": (("full", "full", losses.transducer_log_likelihood),
                   ("pruned", "pruned", losses.transducer_log_likelihood)),
    "lattice-gradient": (("pruned, lattice gradient by autograd", "pruned",
                          losses.transducer_log_likelihood_autograd),
                         ("pruned, forward-backward lattice gradient", "pruned",
                          losses.transducer_log_likelihood)),
}


@contextlib.contextmanager
def lattice_function(function):
    """Both losses call the lattice log-likelihood by its module-level name; swap it
    for this block only (a benchmark switch, restored on exit even after an error)."""
    with mock.patch.object(losses, "transducer_log_likelihood", function), \
            mock.patch.object(pruned_losses, "transducer_log_likelihood", function):
        yield


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hparams", default=str(ROOT / "hparams/conformer_transducer_small.yaml"))
    parser.add_argument("--manifest", help="take real utterances from this CSV (needs --tokenizer)")
    parser.add_argument("--tokenizer", help="SentencePiece .model for --manifest")
    parser.add_argument("--checkpoint", help="a checkpoint folder with model.ckpt (trained weights)")
    parser.add_argument("--compare", choices=sorted(VARIANTS), default="objectives")
    parser.add_argument("--batch-seconds", type=float,
                        help="seconds of audio per batch (default: 12; --breakdown: the recipe's own)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--output", default="/tmp/streamasr_train_step")
    parser.add_argument("--breakdown", action="store_true",
                        help="time each part of a step of every --recipe on real batches of --data-folder")
    parser.add_argument("--recipe", action="append", metavar="LABEL=YAML[,OVERRIDE.yaml][,--key=value]",
                        help="a recipe as train.py takes it, commas between the arguments (repeatable; "
                             "default: the small and the full-size YAML)")
    parser.add_argument("--data-folder", default="data/synthetic", help="corpus of the real batches")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"),
                        help="autocast of the forward (default: the recipe's own)")
    args = parser.parse_args()
    if args.breakdown:
        from _step_breakdown import Recipe, breakdown

        recipes = [Recipe(spec) for spec in args.recipe or [
            f"small={ROOT / 'hparams/conformer_transducer_small.yaml'}",
            f"full-size={ROOT / 'hparams/conformer_transducer.yaml'},--precision=fp32"]]
        print(breakdown(recipes, args.data_folder, args.output, args.device, args.steps, args.precision,
                        args.batch_seconds))
        return
    args.batch_seconds = args.batch_seconds or 12.0
    torch.manual_seed(0)
    (base_label, base_loss, base_lattice), (new_label, new_loss, new_lattice) = VARIANTS[args.compare]

    brain_base, opt_base = make_brain(args.hparams, base_loss, args.output)
    if args.checkpoint:
        brain_base.hparams.model.load_state_dict(torch.load(Path(args.checkpoint) / "model.ckpt"))
        pruned_state = Path(args.checkpoint) / "pruned_loss.ckpt"
        if pruned_state.exists():
            brain_base.hparams.pruned_loss.load_state_dict(torch.load(pruned_state))
        brain_base.modules.normalize._load(Path(args.checkpoint) / "normalizer.ckpt")
    state = {"model": copy.deepcopy(brain_base.hparams.model.state_dict()),
             "pruned_loss": copy.deepcopy(brain_base.hparams.pruned_loss.state_dict())}
    brain_new, opt_new = make_brain(args.hparams, new_loss, args.output, state)
    if args.checkpoint:
        brain_new.modules.normalize._load(Path(args.checkpoint) / "normalizer.ckpt")
    for brain in (brain_base, brain_new):
        brain.modules.train()
        # Without a checkpoint the warm-up round computes the normaliser statistics.
        brain.modules.normalize.update_until_epoch = 0 if args.checkpoint else 10

    if args.manifest:
        if not args.tokenizer:
            parser.error("--manifest needs --tokenizer")
        batch = manifest_batch(args.manifest, args.batch_seconds, args.tokenizer)
    else:
        batch = noise_batch([args.batch_seconds / 4] * 4, tokens_per_second=4.0,
                            vocab=brain_base.hparams.output_neurons)
    wav_lens = batch.sig[1]
    seconds = float((wav_lens * batch.sig[0].shape[1]).sum()) / 16000
    print(f"batch: {len(batch.id)} utterances, {seconds:.1f} s audio, "
          f"{batch.tokens[0].shape[1]} max tokens; threads={torch.get_num_threads()}")

    def variant(brain, optimizer, lattice):
        def one_round(index: int) -> float:
            torch.manual_seed(index)  # the same DCT config for both variants in each round
            with lattice_function(lattice):
                seconds = step(brain, optimizer, batch)
            if index == 0:  # the warm-up round; normaliser statistics frozen from here on
                brain.modules.normalize.update_until_epoch = 0
            return seconds
        return one_round

    medians = interleaved_medians([(base_label, variant(brain_base, opt_base, base_lattice)),
                                   (new_label, variant(brain_new, opt_new, new_lattice))], args.steps)
    base, new = medians[base_label], medians[new_label]
    if args.compare == "objectives":
        new_label = f"{new_label} (prune_range {brain_new.hparams.prune_range})"
    print("| variant | median s / step | steps |")
    print("|---|---|---|")
    print(f"| {base_label} | {base:.3f} | {args.steps} |")
    print(f"| {new_label} | {new:.3f} | {args.steps} |")
    print(f"speed-up: {base / new:.2f}x")


if __name__ == "__main__":
    main()
