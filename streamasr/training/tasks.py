"""Training tasks: what ``train.py`` trains, chosen by the YAML key ``task``.

A task knows its Brain class and its data pipeline: which manifest columns it reads,
what runs before the datasets exist (the transducer trains its SentencePiece
tokenizer), how the datasets are built, what the Brain is given besides its modules,
and how the trained model is tested. ``train.py`` does the rest the same way for every
task (corpus preparation, manifest validation, the experiment folder, ``fit``).

``task`` is optional: a YAML without it trains a transducer (every YAML written before
the key existed). A new task (say self-supervised pre-training) is a module with a
``TrainingTask`` subclass (``streamasr.training.task``) and its Brain, plus one line in
``TASKS``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import speechbrain as sb
from speechbrain.utils.distributed import run_on_main

from streamasr.errors import ConfigError
from streamasr.training.brain import TransducerBrain
from streamasr.training.recipe import dataio_prepare, test_sets, train_tokenizer
from streamasr.training.task import TaskData, TrainingTask

__all__ = ["DEFAULT_TASK", "TASKS", "TASK_KEY", "TaskData", "TrainingTask", "TransducerTask", "task_from_hparams"]

TASK_KEY = "task"  # the YAML key naming the task
DEFAULT_TASK = "transducer"  # when the YAML has no such key


class TransducerTask(TrainingTask):
    """The streaming Conformer-Transducer (``TransducerBrain``): trains (or loads) the
    SentencePiece tokenizer on the train transcripts, tokenises ``wrd``, and tests each
    test set with the best checkpoint by valid WER, writing ``wer_test.txt`` (one test
    set) or ``wer_<test set>.txt``."""

    name = "transducer"
    brain_class = TransducerBrain
    require_transcript = True

    def data(self, hparams: dict) -> TaskData:
        run_on_main(train_tokenizer, args=[hparams])
        tokenizer = train_tokenizer(hparams)  # every process loads the trained model
        datasets = dataio_prepare(hparams, tokenizer)
        return TaskData(train=datasets["train"], valid=datasets["valid"], test=datasets["test"],
                        train_loader_kwargs=datasets["train_loader_kwargs"], extras={"tokenizer": tokenizer})

    def test(self, brain: sb.Brain, data: TaskData, hparams: dict) -> None:
        names = list(test_sets(hparams))
        for name, dataset in data.test.items():
            if len(names) > 1:
                brain.test_set_name = name
                brain.test_wer_file = f"{hparams['output_folder']}/wer_{name}.txt"
            brain.evaluate(dataset, min_key="WER", test_loader_kwargs=hparams["test_dataloader_opts"])


# One line per task: the YAML value of `task` -> its class.
TASKS: dict[str, type[TrainingTask]] = {
    "transducer": TransducerTask,
}


def task_from_hparams(hparams: Optional[Mapping[str, Any]]) -> TrainingTask:
    """The task that the YAML key ``task`` names (``transducer`` when the key is
    absent); ConfigError for an empty or unknown value, naming the known tasks."""
    hparams = hparams or {}
    known = ", ".join(TASKS)
    if TASK_KEY not in hparams:
        return TASKS[DEFAULT_TASK]()
    choice = hparams[TASK_KEY]
    if choice is None or choice == "":
        raise ConfigError(f"{TASK_KEY}: no task given; known tasks: {known} "
                          f"(leave the key out for {DEFAULT_TASK})")
    if not isinstance(choice, str) or choice not in TASKS:
        raise ConfigError(f"{TASK_KEY}: {choice!r} is not a known task; known tasks: {known}")
    return TASKS[choice]()
