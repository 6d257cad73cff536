"""Training: the Brain subclass (``brain``), its transducer objectives (``objectives``),
the tasks ``train.py`` can run (``tasks``) and the recipe glue shared by ``train.py``
(overrides, manifests, tokenizer, data pipeline: ``recipe``)."""

from streamasr.training.brain import ForwardOutput, TransducerBrain, chunk_distillation
from streamasr.training.objectives import OBJECTIVES, FullTransducer, PrunedTransducer, TransducerObjective
from streamasr.training.tasks import TASKS, TrainingTask, TransducerTask

__all__ = ["OBJECTIVES", "TASKS", "ForwardOutput", "FullTransducer", "PrunedTransducer", "TrainingTask",
           "TransducerBrain", "TransducerObjective", "TransducerTask", "chunk_distillation"]
