"""Transducer losses that run on CPU and GPU."""

from streamasr.losses.transducer import flush_denormal_grad, rnnt_loss

__all__ = ["flush_denormal_grad", "rnnt_loss"]
