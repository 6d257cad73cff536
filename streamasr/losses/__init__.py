"""Transducer losses that run on CPU and GPU."""

from streamasr.losses.transducer import rnnt_loss

__all__ = ["rnnt_loss"]
