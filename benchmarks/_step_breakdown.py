"""Where a training step's time goes (``benchmarks/train_step.py --breakdown``).

A recipe (a YAML plus override files and ``--key=value`` options, as ``train.py`` takes
them) is built into a ``TransducerBrain`` and steps through the Brain's own
``fit_batch`` (autocast as the recipe's ``precision`` says, backward, gradient clipping,
AdamW, the LR schedule), at epoch 3 (DCT chunking on, CTC on as the YAMLs have it). The
time of each part is taken with forward hooks on the modules and wrappers around the
Brain's methods:

* data: producing the batch from the recipe's own DataLoader (reading, resampling
  checks, tokenising, padding), measured over the same batches beforehand;
* Fbank, normalisation, CNN front end, each encoder layer, the rest of the encoder
  (positional encodings, masks, final norm), the prediction network (embedding + LSTM +
  projection), joiner + transducer loss (the objective: simple loss, pruning, pruned
  joiner, lattice), CTC (head + loss);
* backward (whatever ``fit_batch`` spends between the loss and the optimizer), the
  optimizer step (finite checks, clipping, AdamW, the LR schedule);
* other: the rest of the forward (DCT sampling, glue).

Hooks cost a few microseconds per module call; on CUDA every hook synchronises, which
serialises the GPU a little more than training does (the totals are measured without
hooks, in the same rounds).

The achieved GFLOP/s is the step's floating-point work counted by
``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention) over its
time without the data loading, against a large matmul timed on the same device in the
same run: the limit the hardware reaches on the work that dominates the model.
"""

from __future__ import annotations

import collections
import contextlib
import statistics
import time
from pathlib import Path
from typing import Callable

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from torch.utils.flop_counter import FlopCounterMode

from streamasr.cpu import flush_denormals, resolve_precision
from streamasr.training import TransducerBrain
from streamasr.training.recipe import (
    check_overrides,
    dataio_prepare,
    merge_overrides,
    split_override_files,
    train_tokenizer,
)

PHASES = ("data", "Fbank", "normalisation", "CNN front end", "encoder layers", "encoder (rest)",
          "prediction network", "joiner + transducer loss", "CTC", "other forward", "backward", "optimizer")


def device_sync(device: str) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA); nothing to wait for on CPU."""
    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


class Recipe:
    """One recipe to time: ``label`` and the ``train.py`` arguments after the script."""

    def __init__(self, spec: str):
        label, _, rest = spec.partition("=")
        if not rest:
            label, rest = Path(spec.split(",")[0]).stem, spec
        self.label = label
        self.args = [arg for arg in rest.split(",") if arg]


def build_brain(recipe: Recipe, data_folder: str, output: str, device: str, precision: str | None,
                batch_seconds: float | None) -> tuple[TransducerBrain, dict]:
    """The recipe's Brain (optimizer ready, at epoch 3, past every warm-up) and hparams."""
    argv, files = split_override_files([*recipe.args, f"--data_folder={data_folder}",
                                        f"--output_folder={output}"])
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    overrides = merge_overrides(files, overrides)
    yaml_text = Path(hparams_file).read_text(encoding="utf-8")
    check_overrides(hparams_file, yaml_text, overrides)
    hparams = load_hyperpyyaml(yaml_text, overrides)
    if batch_seconds is not None:
        hparams["dynamic_batch_sampler_train"]["max_batch_length"] = batch_seconds
    # --precision=bf16 among a recipe's arguments, else the command's --precision, else the YAML's
    chosen = run_opts.get("precision") or precision or hparams.get("precision", "fp32")
    run_opts = {"device": device, "precision": resolve_precision(chosen, device)}
    brain = TransducerBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                            run_opts=run_opts)
    brain.init_optimizers()
    brain.hparams.epoch_counter.current = 3
    brain.optimizer_step = 2000  # past the pruned loss's warm-up, inside the LR schedule
    brain.modules.train()
    brain.modules.normalize.update_until_epoch = 10  # the warm-up round gathers the statistics
    return brain, hparams


def real_batches(hparams: dict, count: int) -> tuple[list, list[float]]:
    """The first ``count`` batches of the recipe's training DataLoader (dynamic batching
    as in training) and the seconds each took to produce."""
    tokenizer = train_tokenizer(hparams)
    datasets = dataio_prepare(hparams, tokenizer)
    loader = sb.dataio.dataloader.make_dataloader(datasets["train"], **datasets["train_loader_kwargs"])
    batches, seconds = [], []
    iterator = iter(loader)
    for _ in range(count):
        start = time.perf_counter()
        batch = next(iterator)
        seconds.append(time.perf_counter() - start)
        batches.append(batch)
    return batches, seconds


def audio_seconds(batch) -> float:
    wavs, lens = batch.sig
    return float((lens * wavs.shape[1]).sum()) / 16000


def padding_fraction(batch) -> float:
    wavs, lens = batch.sig
    return 1.0 - float(lens.sum()) / len(lens)


class PhaseTimer:
    """Forward hooks and method wrappers that add each part's wall time to ``totals``."""

    def __init__(self, brain: TransducerBrain, device: str):
        self.brain = brain
        self.sync = device_sync(device)
        self.totals: dict[str, float] = collections.defaultdict(float)
        self.handles = []
        self.starts: dict[int, float] = {}
        modules = brain.modules
        hparams = brain.hparams
        self._time_module(hparams.compute_features, "Fbank")
        self._time_module(modules.normalize, "normalisation")
        self._time_module(modules.CNN, "CNN front end")
        self._time_module(modules.enc, "encoder")  # the Brain's encoder wrapper (input projection, masks, layers)
        for layer in hparams.Transformer.encoder.layers:
            self._time_module(layer, "encoder layers")
        for name in ("emb", "dec", "proj_dec"):
            self._time_module(modules[name], "prediction network")
        self._time_module(modules.ctc_lin, "CTC")

    def _time_module(self, module: torch.nn.Module, phase: str) -> None:
        def before(module, args):
            self.sync()
            self.starts[id(module)] = time.perf_counter()

        def after(module, args, output):
            self.sync()
            self.totals[phase] += time.perf_counter() - self.starts.pop(id(module))

        self.handles.append(module.register_forward_pre_hook(before))
        self.handles.append(module.register_forward_hook(after))

    def timed(self, phase: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.sync()
                self.totals[phase] += time.perf_counter() - start
        return wrapper

    @contextlib.contextmanager
    def active(self):
        """Time one ``fit_batch``: the Brain's methods, the objective, ``ctc_loss``."""
        brain = self.brain
        patches = [
            (brain, "compute_forward", self.timed("forward", brain.compute_forward)),
            (brain, "compute_objectives", self.timed("objectives", brain.compute_objectives)),
            (brain, "optimizers_step", self.timed("optimizer", brain.optimizers_step)),
            (brain.objective, "loss", self.timed("joiner + transducer loss", brain.objective.loss)),
            (brain.objective, "joint_logits", self.timed("joiner + transducer loss", brain.objective.joint_logits)),
        ]
        ctc_loss = torch.nn.functional.ctc_loss
        try:
            for owner, name, wrapper in patches:
                setattr(owner, name, wrapper)
            torch.nn.functional.ctc_loss = self.timed("CTC", ctc_loss)
            yield
        finally:
            torch.nn.functional.ctc_loss = ctc_loss
            for owner, name, _ in patches:
                if owner.__dict__.get(name) is not None:
                    delattr(owner, name)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()

    def phases(self, step_seconds: float) -> dict[str, float]:
        """Exclusive seconds per phase of ``PHASES`` (without data) for one step."""
        t = self.totals
        out = {name: t[name] for name in ("Fbank", "normalisation", "CNN front end", "encoder layers",
                                          "prediction network", "joiner + transducer loss", "CTC", "optimizer")}
        out["encoder (rest)"] = t["encoder"] - t["encoder layers"]
        named_forward = sum(out[name] for name in ("Fbank", "normalisation", "CNN front end", "encoder layers",
                                                   "encoder (rest)", "prediction network"))
        # the CTC head (forward) and its loss (objectives) are both counted under CTC
        out["other forward"] = max(0.0, t["forward"] + t["objectives"] - named_forward
                                   - t["joiner + transducer loss"] - t["CTC"])
        out["backward"] = max(0.0, step_seconds - t["forward"] - t["objectives"] - t["optimizer"])
        return out


def step_flops(brain: TransducerBrain, batch) -> int:
    """Floating-point operations of one ``fit_batch`` (forward, loss, backward)."""
    with FlopCounterMode(display=False) as counter:
        brain.fit_batch(batch)
    return counter.get_total_flops()


def matmul_gflops(device: str, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a ``size`` x ``size`` matmul on ``device`` (median of ``repeats``)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    sync = device_sync(device)
    a @ b
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def breakdown(recipes: list[Recipe], data_folder: str, output: str, device: str, steps: int,
              precision: str | None, batch_seconds: float | None) -> str:
    """Time ``steps`` real batches per recipe, recipes in turn within each round (the same
    batches and DCT draws for all), and return the markdown report."""
    flush_denormals()  # as train.py does
    brains = []
    for index, recipe in enumerate(recipes):
        torch.manual_seed(0)
        brain, hparams = build_brain(recipe, data_folder, f"{output}/{index}", device, precision, batch_seconds)
        batches, load_seconds = real_batches(hparams, steps + 1)
        brains.append((recipe, brain, hparams, batches, load_seconds))
    results = {recipe.label: {"steps": [], "phases": collections.defaultdict(list)} for recipe in recipes}
    sync = device_sync(device)
    for round_index in range(steps + 1):  # round 0 warms up (and gathers normaliser statistics)
        for recipe, brain, _, batches, _ in brains:
            batch = batches[round_index]
            torch.manual_seed(round_index)
            sync()
            start = time.perf_counter()
            brain.fit_batch(batch)  # without hooks: the step's true time
            sync()
            plain = time.perf_counter() - start
            timer = PhaseTimer(brain, device)
            torch.manual_seed(round_index)  # the same DCT draw again
            start = time.perf_counter()
            with timer.active():
                brain.fit_batch(batch)
            sync()
            hooked = time.perf_counter() - start
            timer.close()
            if round_index == 0:
                brain.modules.normalize.update_until_epoch = 0
                continue
            results[recipe.label]["steps"].append(plain)
            for phase, seconds in timer.phases(hooked).items():
                results[recipe.label]["phases"][phase].append(seconds * plain / hooked)
    dtype = torch.bfloat16 if any(brain.precision == "bf16" for _, brain, *_ in brains) else torch.float32
    limit = matmul_gflops(device, torch.float32)
    limit_bf16 = matmul_gflops(device, torch.bfloat16) if dtype == torch.bfloat16 else None
    lines = [f"device {device}, {torch.get_num_threads()} threads, {steps} steps per recipe after one warm-up, "
             f"recipes in turn; matmul 2048^2 fp32: {limit:.1f} GFLOP/s"
             + (f", bf16: {limit_bf16:.1f} GFLOP/s" if limit_bf16 else ""), ""]
    header = "| phase | " + " | ".join(f"{r.label} ms | {r.label} %" for r in recipes) + " |"
    lines += [header, "|---|" + "---|---|" * len(recipes)]
    summaries = []
    for recipe, brain, hparams, batches, load_seconds in brains:
        label = recipe.label
        step = statistics.median(results[label]["steps"])
        phase_ms = {phase: 1000 * statistics.median(values) for phase, values in results[label]["phases"].items()}
        phase_ms["data"] = 1000 * statistics.median(load_seconds[1:])
        audio = statistics.median(audio_seconds(b) for b in batches[1:])
        padding = statistics.mean(padding_fraction(b) for b in batches[1:])
        flops = step_flops(brain, batches[1])
        summaries.append((label, step, phase_ms, audio, padding, flops, hparams))
    for phase in PHASES:
        cells = []
        for label, step, phase_ms, *_ in summaries:
            total = 1000 * step + phase_ms["data"]
            cells.append(f"{phase_ms.get(phase, 0.0):.1f} | {100 * phase_ms.get(phase, 0.0) / total:.1f}")
        lines.append(f"| {phase} | " + " | ".join(cells) + " |")
    lines.append("| **step (without data)** | " + " | ".join(f"**{1000 * s[1]:.1f}** | " for s in summaries) + " |")
    lines += ["", "| recipe | audio s / batch | padding | step s (without data) | audio s per s | GFLOP / step | GFLOP/s | "
              "share of matmul | speed vs first |", "|---|---|---|---|---|---|---|---|---|"]
    first_rate = None
    brain_precision = {recipe.label: brain.precision for recipe, brain, *_ in brains}
    for label, step, phase_ms, audio, padding, flops, hparams in summaries:
        # the rate of the step itself: the data row is produced once per batch by the
        # DataLoader and its first pass includes one-off start-up costs (see the table)
        total = step
        rate = audio / total
        first_rate = first_rate or rate
        gflops = flops / 1e9
        achieved = gflops / step
        reference = limit_bf16 if brain_precision[label] == "bf16" else limit
        lines.append(f"| {label} | {audio:.1f} | {100 * padding:.1f} % | {total:.3f} | {rate:.1f} | {gflops:.1f} | "
                     f"{achieved:.1f} | {100 * achieved / reference:.0f} % | {rate / first_rate:.2f}x |")
    return "\n".join(lines)
