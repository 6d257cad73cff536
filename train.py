#!/usr/bin/env python3
"""Train a streaming Conformer-Transducer with Dynamic Chunk Training.

    python train.py hparams/conformer_transducer_small.yaml \
        --data_folder=data/synthetic --output_folder=results/small
    python train.py hparams/conformer_transducer.yaml recipes/LibriSpeech/librispeech.yaml \
        --data_folder=/data/LibriSpeech --output_folder=results/librispeech
    torchrun --nproc_per_node=4 train.py hparams/conformer_transducer.yaml ...   (DDP)

Every knob is a YAML key. Further YAML files after the first (a recipe's overrides)
and ``--key=value`` options override it, in that order. The optional key ``task``
names what is trained (``streamasr.training.tasks.TASKS``; default ``transducer``).
The script prepares the corpus when the YAML names one (``prepare_corpus``; main
process only), validates the manifests, builds the task's data pipeline (for the
transducer: trains or loads the SentencePiece tokenizer), then trains, and finally
tests; the transducer decodes each test set with the best checkpoint by valid WER
(or the average of the ``average_n_best`` best), writing ``wer_test.txt`` (one test
set) or ``wer_<test set>.txt``. Re-running the same command resumes from the last
checkpoint, including from the middle of an epoch. Under torchrun, only rank 0
prepares data, logs and writes checkpoints.
"""

import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from streamasr.cpu import flush_denormals, resolve_precision
from streamasr.errors import StreamAsrError
from streamasr.training.recipe import (
    check_overrides,
    merge_overrides,
    prepare_data,
    split_override_files,
    step_limit_override,
    validate_manifests,
)
from streamasr.training.tasks import task_from_hparams


def main(argv):
    argv, override_files = split_override_files(argv)
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    overrides = merge_overrides(override_files, overrides)
    # SpeechBrain 1.1.2 parses `--optimizer_step_limit=N` as a run option but keeps it a
    # string, and Brain then compares it with an int (TypeError at the first step).
    if isinstance(run_opts.get("optimizer_step_limit"), str):
        import dataclasses

        run_opts = dataclasses.replace(run_opts, optimizer_step_limit=int(run_opts.get("optimizer_step_limit")))
    with open(hparams_file, encoding="utf-8") as fin:
        yaml_text = fin.read()
    overrides = step_limit_override(run_opts, overrides, yaml_text)
    check_overrides(hparams_file, yaml_text, overrides)
    hparams = load_hyperpyyaml(yaml_text, overrides)
    task = task_from_hparams(hparams)  # the YAML's `task` (default: transducer)
    if hparams.get("precision") == "auto":  # bf16 where it is native (streamasr/cpu.py)
        hparams["precision"] = resolve_precision("auto", run_opts.get("device") or "cpu")

    sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    run_on_main(prepare_data, args=[hparams])
    run_on_main(validate_manifests, args=[hparams], kwargs={"require_transcript": task.require_transcript})
    data = task.data(hparams)

    brain = task.make_brain(hparams, run_opts, data)
    brain.fit(
        hparams["epoch_counter"],
        data.train,
        data.valid,
        train_loader_kwargs=data.train_loader_kwargs,
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    task.test(brain, data, hparams)
    return brain


if __name__ == "__main__":
    # Before torch starts its worker threads (importing does not), so that all of them
    # flush denormals: see streamasr/cpu.py. Not at import time: a program that imports
    # train.py keeps its floating-point mode.
    flush_denormals()
    try:
        main(sys.argv[1:])
    except StreamAsrError as error:  # bad input: a message, no traceback
        print(f"train.py: error: {error}", file=sys.stderr)
        sys.exit(2)
