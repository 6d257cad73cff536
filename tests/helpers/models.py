"""Model folders for the unit tier, built in-process without running train.py, and the
shrunk random encoders of the streaming tests.

``build_model_folder`` writes a folder in the layout ``train.py`` writes (and
``load_model``, ``export``, ``export-onnx``, ``evaluate`` read): ``hyperparams.yaml``
(the YAML with its overrides resolved, as ``sb.create_experiment_directory`` writes it),
``train.py``, ``env.log``, ``log.txt``, ``train_log.txt``, ``wer_<test set>.txt`` and
``save/``: the SentencePiece tokenizer and one ``CKPT+...`` folder per epoch kept
(``model``, ``normalizer``, ``counter``, ``pruned_loss``, ``brain``, ``optimizer``,
``dataloader-TRAIN``, meta ``WER`` and ``epoch``). It runs ``train.py``'s own steps in
this process: the overrides are parsed, merged and checked by the recipe's functions,
the tokenizer is trained by ``train_tokenizer``, the datasets come from
``dataio_prepare``, and ``TransducerBrain.fit`` runs its epochs, validates and saves the
checkpoints; then each test set is decoded as ``train.py`` does. The only difference:
training batches run forward only (no gradient, no update, ``FrozenBrain``), so the
weights stay at their random initialisation (seeded by the YAML's ``seed``) while the
normaliser gathers its statistics and the train loss is what it was at initialisation.
"""

from __future__ import annotations

import shutil
import sys
from datetime import date
from pathlib import Path

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references

from helpers.common import FULL_YAML, REPO, SMALL_YAML, random_encoder
from streamasr.parts import Joiner
from streamasr.training.brain import TransducerBrain
from streamasr.training.recipe import (
    check_overrides,
    dataio_prepare,
    merge_overrides,
    split_override_files,
    test_sets,
    train_tokenizer,
)


class FrozenBrain(TransducerBrain):
    """``TransducerBrain`` whose training batches run forward only: the loss is computed
    (and the normaliser, in train mode, updates its statistics as in training) but
    nothing is back-propagated and the optimiser never steps. ``drift`` > 0 moves every
    weight by ``N(0, drift)`` at the end of each epoch after the first (seeded by the
    epoch), so that the checkpoints of several epochs differ as a training run's would
    (averaging has something to average)."""

    drift: float = 0.0

    def fit_batch(self, batch):
        # Gradients on: the pruned objective takes the simple loss's gradient to choose
        # its range. Nothing is back-propagated into the weights.
        outputs = self.compute_forward(batch, sb.Stage.TRAIN)
        loss = self.compute_objectives(outputs, batch, sb.Stage.TRAIN)
        return loss.detach().cpu()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN and self.drift > 0 and epoch is not None and epoch > 1:
            generator = torch.Generator().manual_seed(epoch)
            with torch.no_grad():
                for parameter in self.hparams.model.parameters():
                    parameter.add_(torch.randn(parameter.shape, generator=generator) * self.drift)
        super().on_stage_end(stage, stage_loss, epoch)


def _write_experiment_folder(output: Path, hparams_file: str, overrides: str | None) -> None:
    """What ``sb.create_experiment_directory`` writes (``hyperparams.yaml`` with the
    overrides resolved, a copy of the training script, ``env.log``), without its side
    effects on this process (logging set up into the folder, ``sys.excepthook``)."""
    output.mkdir(parents=True, exist_ok=True)
    with open(hparams_file, encoding="utf-8") as handle:
        resolved = resolve_references(handle, overrides)
    with open(output / "hyperparams.yaml", "w", encoding="utf-8") as handle:
        print(f"# Generated {date.today()} from:", file=handle)
        print(f"# {Path(hparams_file).resolve()}", file=handle)
        print("# yamllint disable", file=handle)
        shutil.copyfileobj(resolved, handle)
    shutil.copy(REPO / "train.py", output)
    (output / "env.log").write_text(
        "SpeechBrain system description\n==============================\n"
        f"Python version:\n{sys.version}\n==============================\n"
        f"torch {torch.__version__}, speechbrain {sb.__version__} (tests/helpers/models.py: no training run)\n",
        encoding="utf-8")
    (output / "log.txt").write_text("built by tests/helpers/models.py (train.py's steps, no update)\n",
                                    encoding="utf-8")


def build_model_folder(yaml: Path, corpus: Path, output: Path, *extra: str, drift: float = 0.0,
                       output_scale: float = 1.0) -> Path:
    """A ``train.py`` output folder of ``yaml`` on ``corpus`` with random weights, built in
    this process (see the module docstring). ``extra``: what ``train.py`` takes after the
    YAML (override YAML files, ``--key=value``; ``--seed=N`` sets the initialisation);
    ``--number_of_epochs=N`` gives N validated epochs, of which ``keep_checkpoints``
    (best valid WER) are kept; ``drift``: see ``FrozenBrain``. ``output_scale``: the
    joiner's output layer is multiplied by it before the first epoch: greedy decisions
    stay the same (the argmax of scaled logits), their margins grow by that factor, so
    that float differences between two exact paths cannot flip a near-tie of random
    weights. Returns ``output``."""
    # --noprogressbar last: split_override_files takes a YAML after a bare option for its value
    argv, override_files = split_override_files(
        [str(yaml), f"--data_folder={corpus}", f"--output_folder={output}", *extra, "--noprogressbar"])
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    overrides = merge_overrides(override_files, overrides)
    yaml_text = Path(hparams_file).read_text(encoding="utf-8")
    check_overrides(hparams_file, yaml_text, overrides)
    hparams = load_hyperpyyaml(yaml_text, overrides)
    if output_scale != 1.0:
        with torch.no_grad():
            for parameter in Joiner.from_modules(hparams["modules"]).classifier.parameters():
                parameter.mul_(output_scale)
    _write_experiment_folder(Path(hparams["output_folder"]), hparams_file, overrides)

    tokenizer = train_tokenizer(hparams)
    datasets = dataio_prepare(hparams, tokenizer)
    brain = FrozenBrain(modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
                        run_opts=run_opts, checkpointer=hparams["checkpointer"])
    brain.tokenizer = tokenizer
    brain.drift = drift
    brain.fit(hparams["epoch_counter"], datasets["train"], datasets["valid"],
              train_loader_kwargs=datasets["train_loader_kwargs"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    names = list(test_sets(hparams))
    for name, dataset in datasets["test"].items():
        if len(names) > 1:
            brain.test_set_name = name
            brain.test_wer_file = f"{hparams['output_folder']}/wer_{name}.txt"
        brain.evaluate(dataset, min_key="WER", test_loader_kwargs=hparams["test_dataloader_opts"])
    return output


# --------------------------------------------------------- shrunk random encoders
# The shipped YAMLs' encoders (RelPosMHAXL Conformer, DCConv, the real CNN front end's
# width), the full-size one shrunk in width/depth so that the streaming tests run in
# seconds.
SHRUNK_ENCODERS = {
    "small": (SMALL_YAML, {"data_folder": "unused"}),
    "full": (FULL_YAML, {"data_folder": "unused", "d_model": 64, "nhead": 4, "num_encoder_layers": 3, "d_ffn": 128}),
}


def shrunk_encoder(name: str) -> torch.nn.Module:
    """The encoder of ``SHRUNK_ENCODERS[name]`` with seeded random weights (eval mode)."""
    return random_encoder(*SHRUNK_ENCODERS[name])


def encoder_input(frames: int, batch: int = 2) -> torch.Tensor:
    """Random encoder input ``[B, frames, 640]`` (the CNN front end's flattened output),
    seeded by ``frames``."""
    return torch.randn(batch, frames, 640, generator=torch.Generator().manual_seed(frames))
