"""The contract of a training task (``TrainingTask``) and what its data pipeline hands
``train.py`` (``TaskData``). The registry of tasks is ``streamasr.training.tasks.TASKS``;
this module is apart from it so that a task in a module of its own (say
``streamasr/training/ssl.py``) can subclass ``TrainingTask`` and be imported by the
registry without an import cycle.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import speechbrain as sb

__all__ = ["TaskData", "TrainingTask"]


@dataclasses.dataclass
class TaskData:
    """What a task's data pipeline built: ``train`` and ``valid`` datasets, ``test``
    (test set name -> dataset, may be empty), the train loader's keyword arguments, and
    ``extras``: attributes given to the Brain before training (the transducer's
    ``tokenizer``)."""

    train: Any
    valid: Any
    test: dict[str, Any]
    train_loader_kwargs: dict
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


class TrainingTask(abc.ABC):
    """One kind of training run: its Brain class, which manifest columns it reads, its
    data pipeline (``data``: what runs before the datasets exist, the datasets, what the
    Brain is given besides its modules) and its test after ``fit``. ``name`` is its
    value of the YAML key ``task``."""

    name: ClassVar[str]
    brain_class: ClassVar[type[sb.Brain]]
    require_transcript: ClassVar[bool] = True  # does it read the manifests' `wrd` column?

    @abc.abstractmethod
    def data(self, hparams: dict) -> TaskData:
        """Build the datasets (on every process; steps that write files, such as
        training a tokenizer, run on the main process first)."""

    def make_brain(self, hparams: dict, run_opts: Any, data: TaskData) -> sb.Brain:
        """The Brain over the YAML's ``modules``, ``opt_class`` and ``checkpointer``,
        with ``data.extras`` set as its attributes."""
        brain = self.brain_class(
            modules=hparams["modules"],
            opt_class=hparams["opt_class"],
            hparams=hparams,
            run_opts=run_opts,
            checkpointer=hparams["checkpointer"],
        )
        for name, value in data.extras.items():
            setattr(brain, name, value)
        return brain

    def test(self, brain: sb.Brain, data: TaskData, hparams: dict) -> None:
        """After ``fit``: evaluate the trained model (default: nothing to test)."""
