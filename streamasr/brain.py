"""Kept for run folders written before the package layout: their saved
``hyperparams.yaml`` names ``!new:streamasr.brain.AtomicCheckpointer``. New code imports
``streamasr.checkpoints`` and ``streamasr.training``."""

from streamasr.checkpoints import AtomicCheckpointer
from streamasr.training.brain import TransducerBrain

__all__ = ["AtomicCheckpointer", "TransducerBrain"]
