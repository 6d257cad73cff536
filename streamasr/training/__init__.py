"""Training: the Brain subclass (``brain``) and the recipe glue shared by ``train.py``
(overrides, manifests, tokenizer, data pipeline: ``recipe``)."""

from streamasr.training.brain import ForwardOutput, TransducerBrain, chunk_distillation

__all__ = ["ForwardOutput", "TransducerBrain", "chunk_distillation"]
