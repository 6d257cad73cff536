"""The encoder side of streaming: SpeechBrain streaming contexts and the reference
chunk-by-chunk loop.

Owns the one place where a ``DynChunkTrainConfig`` becomes an encoder streaming
context. Why a helper: SpeechBrain 1.1.2's ``ConformerEncoder.make_streaming_context``
stores ``left_context_size_frames()`` in each layer, which is ``None`` for unlimited
left context, and ``ConformerEncoderLayer.forward_streaming`` then fails on ``None > 0``
(TypeError). Unlimited left context means "keep every past frame"; slicing with
``x[..., -n:, :]`` keeps everything when ``n`` exceeds the length, so we store a frame
count larger than any stream instead.
"""

from __future__ import annotations

import sys

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

# Larger than any stream's frame count; slicing with it keeps all past frames.
UNLIMITED_LEFT_CONTEXT_FRAMES = sys.maxsize // 2


def make_encoder_context(encoder: torch.nn.Module, config: DynChunkTrainConfig) -> object:
    """Streaming context for ``TransformerASR.encode_streaming`` that also supports
    unlimited left context (``config.left_context_size is None``)."""
    context = encoder.make_streaming_context(
        DynChunkTrainConfig(config.chunk_size, config.left_context_size or 0)
    )
    if config.is_infinite_left_context():
        context.dynchunktrain_config = config
        context.encoder_context.dynchunktrain_config = config
        for layer in context.encoder_context.layers:
            layer.mha_left_context_size = UNLIMITED_LEFT_CONTEXT_FRAMES
    return context


@torch.no_grad()
def encode_chunk_by_chunk(encoder: torch.nn.Module, src: torch.Tensor, config: DynChunkTrainConfig) -> torch.Tensor:
    """Encode ``src`` ``[B, T, F]`` (encoder input frames, i.e. the CNN front end's
    output, 40 ms each by default) by feeding ``config.chunk_size`` frames at a time to
    ``encode_streaming``. Returns ``[B, T, d_model]``; the last chunk may be shorter."""
    context = make_encoder_context(encoder, config)
    outputs = []
    for start in range(0, src.shape[1], config.chunk_size):
        outputs.append(encoder.encode_streaming(src[:, start : start + config.chunk_size], context))
    return torch.cat(outputs, dim=1)
