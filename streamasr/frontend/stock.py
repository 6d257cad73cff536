"""The stock-SpeechBrain streaming front end: ``StreamingFeatureWrapper`` over
Fbank -> normaliser -> CNN, exactly as an exported folder's ``fea_streaming_extractor``
builds it (what stock ``StreamingASR`` runs).

Two renderings of one builder, side by side so they cannot drift: the Python object
(``stock_feature_wrapper``, used by ``--frontend stock``) and the hyperpyyaml entry the
exporter writes (``stock_feature_wrapper_yaml``); a test instantiates the YAML and
compares the two. Inexact by design of the wrapper: it expects ``(stride - 1) x frames``
samples per chunk, so its frames drift off the training grid by one sample per encoder
frame (DESIGN.md, "Known pitfalls").
"""

from __future__ import annotations

import torch
from speechbrain.lobes.features import StreamingFeatureWrapper
from speechbrain.nnet.containers import LengthsCapableSequential
from speechbrain.utils.filter_analysis import stack_filter_properties

from streamasr.keys import KEYS


def stock_feature_wrapper(compute_features: torch.nn.Module, normalize: torch.nn.Module, cnn: torch.nn.Module
                          ) -> StreamingFeatureWrapper:
    """The wrapper: the normaliser is in the module chain but not in the filter chain
    (it works frame by frame with frozen statistics)."""
    properties = stack_filter_properties([compute_features, cnn])
    return StreamingFeatureWrapper(LengthsCapableSequential(compute_features, normalize, cnn), properties)


def stock_feature_wrapper_yaml(name: str = "fea_streaming_extractor") -> str:
    """The same builder as a hyperpyyaml entry over the recipe's front-end keys."""
    features, normalize, cnn = KEYS.front_end
    return f"""# Streaming features: Fbank -> normaliser -> CNN, chunk by chunk. The normaliser is not
# part of the filter chain (it works frame by frame with frozen statistics).
{name}: !new:speechbrain.lobes.features.StreamingFeatureWrapper
    module: !new:speechbrain.nnet.containers.LengthsCapableSequential
        - !ref <{features}>
        - !ref <{normalize}>
        - !ref <{cnn}>
    properties: !apply:speechbrain.utils.filter_analysis.stack_filter_properties
        - [!ref <{features}>, !ref <{cnn}>]
"""
