"""The names of the run-time modes a user picks on the command line, one home each.

Kept apart from the modules that implement them (``streamasr.frontend.paths``,
``streamasr.streaming.backends``, ``streamasr.decoding``), which import torch: the
command line offers these choices, and answers ``--help`` and argument errors, without
loading torch.
"""

from __future__ import annotations

FEATURE_PATHS = ("exact", "stock")  # streaming features: ours (equal to training) or StreamingASR's
BACKENDS = ("torch", "onnx")  # what runs the encoder, decoder and joiner
DECODINGS = ("greedy", "beam")  # the search
EXPORT_TARGETS = ("streamasr", "sherpa-onnx")  # what `export-onnx` writes for
