#!/usr/bin/env python3
"""Train a streaming Conformer-Transducer with Dynamic Chunk Training.

    python train.py hparams/conformer_transducer_small.yaml \
        --data_folder=data/synthetic --output_folder=results/small

Every knob is a YAML key (override any with ``--key=value``). The script validates the
manifests, trains (or loads) the SentencePiece tokenizer, builds the data pipeline,
then trains, and finally decodes the test set with the best checkpoint by valid WER
(``wer_test.txt`` in the output folder). Re-running the same command resumes from the
last checkpoint, including from the middle of an epoch.
"""

import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main

from streamasr.brain import TransducerBrain
from streamasr.recipe import (
    check_overrides,
    dataio_prepare,
    train_tokenizer,
    validate_manifests,
)


def main(argv):
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    # SpeechBrain 1.1.2 parses `--optimizer_step_limit=N` as a run option but keeps it a
    # string, and Brain then compares it with an int (TypeError at the first step).
    if isinstance(run_opts.get("optimizer_step_limit"), str):
        import dataclasses

        run_opts = dataclasses.replace(run_opts, optimizer_step_limit=int(run_opts.get("optimizer_step_limit")))
    with open(hparams_file, encoding="utf-8") as fin:
        yaml_text = fin.read()
    check_overrides(hparams_file, yaml_text, overrides)
    hparams = load_hyperpyyaml(yaml_text, overrides)

    sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    run_on_main(validate_manifests, args=[hparams])
    run_on_main(train_tokenizer, args=[hparams])
    tokenizer = train_tokenizer(hparams)  # every process loads the trained model
    datasets = dataio_prepare(hparams, tokenizer)

    brain = TransducerBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.tokenizer = tokenizer
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=datasets["train_loader_kwargs"],
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    brain.evaluate(
        datasets["test"],
        min_key="WER",
        test_loader_kwargs=hparams["test_dataloader_opts"],
    )


if __name__ == "__main__":
    from streamasr.data.manifest import ManifestError
    from streamasr.recipe import ConfigError

    try:
        main(sys.argv[1:])
    except (ManifestError, ConfigError) as error:  # bad input: a message, no traceback
        print(f"train.py: error: {error}", file=sys.stderr)
        sys.exit(2)
