"""Dynamic Chunk Training with look-ahead (right context): the chunking config, the
sampler that draws it per batch, and the masked encoder pass that equals streaming.

SpeechBrain's ``DynChunkTrainConfig`` has a chunk size ``C`` (encoder frames) and a left
context ``L`` (chunks); ``ChunkConfig`` adds ``right_frames`` ``R``: how many encoder
frames past its chunk's end a chunk may look at. ``R = 0`` is SpeechBrain's config and
SpeechBrain's masks, unchanged.

Why look-ahead in the first layer only: a per-layer "chunk + R" attention mask is not
something streaming can compute. The R frames belong to the next chunk, and in every
layer they would see *their* look-ahead, so after n layers a chunk would depend on
about n x R frames of future (``streamasr check-streaming --right-frames`` shows it).
Exact alternatives are Emformer's right-context copies in every layer (R/C more frames
per layer in training and streaming) or look-ahead where the R frames' inputs do not
depend on anything past them. The first layer's attention keys and values are the
projections of the CNN front end's output (after the first feed-forward half-step),
which depends only on the audio up to the frame plus the CNN's own look-ahead; so in
layer 1 a chunk's queries attend to its left context, itself and the R frames after
it, and every later layer is chunk-masked as in plain DCT. Streaming computes exactly
that: it waits for C + R frames, runs the first layer's attention over cache + C + R
keys for the C chunk queries, drops the R frames there and carries on with the C.

The Dynamic Chunk Convolution never sees look-ahead, not even in layer 1: its input
is the attention output, and the attention output of the R frames in the masked pass
depends on *their* chunk's look-ahead (R frames further), which streaming has not got
when it runs the chunk. Only Emformer-style copies would make that exact.

A chunk of one frame (``C = 1``) makes the convolution causal (each frame sees its
past kernel half only) and attention causal up to R: the causal mode of a DCT model.
SpeechBrain forbids its ``causal`` flag together with the chunked convolution, so the
causal mode is this chunk size, not the flag.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import speechbrain as sb
import torch
from speechbrain.lobes.models.transformer.TransformerASR import EncoderWrapper, make_transformer_src_tgt_masks
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.errors import ConfigError


@dataclasses.dataclass
class ChunkConfig(DynChunkTrainConfig):
    """SpeechBrain's chunking config (``chunk_size`` frames, ``left_context_size``
    chunks, ``None`` = unlimited) plus ``right_frames``: encoder frames of look-ahead
    past each chunk, seen by the first layer's attention (module docstring). A
    ``DynChunkTrainConfig`` wherever SpeechBrain takes one."""

    right_frames: int = 0

    def __post_init__(self):
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ConfigError(f"chunk_size must be a whole number of encoder frames >= 1, got {self.chunk_size!r}")
        if self.left_context_size is not None and (not isinstance(self.left_context_size, int)
                                                   or self.left_context_size < 0):
            raise ConfigError(f"left_context_size must be a number of chunks >= 0 or None (unlimited), "
                              f"got {self.left_context_size!r}")
        if not isinstance(self.right_frames, int) or self.right_frames < 0:
            raise ConfigError(f"right_frames must be a whole number of encoder frames >= 0, got {self.right_frames!r}")


def right_frames(config: Optional[DynChunkTrainConfig]) -> int:
    """Look-ahead frames of any config (0 for SpeechBrain's own and for None)."""
    return getattr(config, "right_frames", 0) if config is not None else 0


def with_right_frames(config: DynChunkTrainConfig, right: int) -> DynChunkTrainConfig:
    """``config`` with ``right`` look-ahead frames (SpeechBrain's own class when 0)."""
    if right == 0:
        return DynChunkTrainConfig(config.chunk_size, config.left_context_size)
    return ChunkConfig(config.chunk_size, config.left_context_size, right)


def describe(config: Optional[DynChunkTrainConfig]) -> str:
    if config is None:
        return "full context"
    left = "unlimited" if config.left_context_size is None else f"{config.left_context_size} chunks"
    return f"chunk {config.chunk_size} frames, left {left}, right {right_frames(config)} frames"


def chunk_attention_mask(frames: int, config: DynChunkTrainConfig, right: int = 0,
                         device: torch.device | str = "cpu") -> torch.Tensor:
    """``[frames, frames]`` bool, True = query (row) may NOT attend to key (column):
    each query sees its chunk's left context, its chunk and ``right`` frames past the
    chunk. ``right = 0`` equals SpeechBrain's ``make_transformer_src_mask``."""
    position = torch.arange(frames, device=device)
    chunk_start = position // config.chunk_size * config.chunk_size
    visible_end = chunk_start + config.chunk_size + right
    masked = position[None, :] >= visible_end[:, None]
    if config.left_context_size is not None:
        visible_start = chunk_start - config.chunk_size * config.left_context_size
        masked = masked | (position[None, :] < visible_start[:, None])
    return masked


def encode_masked(transformer: torch.nn.Module, src: torch.Tensor, wav_len: Optional[torch.Tensor] = None,
                  pad_idx: int = 0, dynchunktrain_config: Optional[DynChunkTrainConfig] = None) -> torch.Tensor:
    """``TransformerASR.encode`` with look-ahead in the first layer (module docstring):
    the masked pass that streaming with ``right_frames`` equals. Without look-ahead it
    is SpeechBrain's own ``encode``."""
    right = right_frames(dynchunktrain_config)
    if right == 0:
        return transformer.encode(src, wav_len, pad_idx=pad_idx, dynchunktrain_config=dynchunktrain_config)
    if transformer.attention_type != "RelPosMHAXL" or not hasattr(transformer.encoder, "layers"):
        raise ConfigError("look-ahead (right_frames > 0) is implemented for SpeechBrain's Conformer with "
                          f"RelPosMHAXL attention, not attention_type={transformer.attention_type!r}")
    if transformer.causal:
        raise ConfigError("look-ahead contradicts causal=True; use chunk_size 1 for the causal mode")
    encoder = transformer.encoder
    if encoder.training and encoder.layerdrop_prob > 0:
        raise ConfigError("look-ahead puts the right context in the first layer, which layerdrop could skip: "
                          "set layerdrop_prob to 0")
    if src.dim() == 4:
        src = src.reshape(src.shape[0], src.shape[1], -1)
    # SpeechBrain's own key padding mask (the chunk masks are ours, per layer)
    key_padding_mask = make_transformer_src_tgt_masks(src, None, wav_len, pad_idx=pad_idx)[0]
    chunk_only = DynChunkTrainConfig(dynchunktrain_config.chunk_size, dynchunktrain_config.left_context_size)
    x = transformer.custom_src_module(src)
    pos_embs = transformer.positional_encoding(x)
    first = chunk_attention_mask(x.shape[1], chunk_only, right, x.device)
    rest = chunk_attention_mask(x.shape[1], chunk_only, 0, x.device)
    for index, layer in enumerate(encoder.layers):
        x, _ = layer(x, src_mask=first if index == 0 else rest, src_key_padding_mask=key_padding_mask,
                     pos_embs=pos_embs, dynchunktrain_config=chunk_only)
    return encoder.norm(x)


class LookaheadEncoderWrapper(EncoderWrapper):
    """SpeechBrain's ``EncoderWrapper`` (what the Brain calls, so that DDP sees the
    encoder's forward) with ``encode_masked``: same parameters and names."""

    def forward(self, x, wav_lens=None, pad_idx=0, **kwargs):
        return encode_masked(self.transformer, x, wav_lens, pad_idx, kwargs.get("dynchunktrain_config"))


@dataclasses.dataclass
class DynChunkLookaheadSampler:
    """Draws a ``ChunkConfig`` (C, L, R) per training batch; valid/test use fixed
    configs (None = full context), as SpeechBrain's ``DynChunkTrainConfigRandomSampler``.

    With probability ``chunkwise_prob`` a batch is chunked (else full context). Its
    chunk size is drawn uniformly from ``chunk_sizes`` (encoder frames; a list so that
    small chunks such as 1, 2 and 4 frames, the causal mode and 80 / 160 ms, get a set
    share rather than 1/32 of a range). With probability ``right_context_prob`` it gets
    look-ahead, drawn uniformly from ``right_frames_min..right_frames_max``; otherwise
    R = 0 (the share the model needs to stay good without look-ahead). With probability
    ``limited_left_context_prob`` the left context is limited: a duration drawn
    uniformly in ``left_context_frames_min..max`` encoder frames, turned into whole
    chunks (at least one), so that small chunks do not get a tiny left context.
    """

    chunkwise_prob: float = 0.6
    chunk_sizes: Sequence[int] = (1, 2, 4, 8, 12, 16, 24, 32)
    right_context_prob: float = 0.5
    right_frames_min: int = 1
    right_frames_max: int = 8
    limited_left_context_prob: float = 0.75
    left_context_frames_min: int = 16
    left_context_frames_max: int = 512
    test_config: Optional[DynChunkTrainConfig] = None
    valid_config: Optional[DynChunkTrainConfig] = None

    def __post_init__(self):
        for name in ("chunkwise_prob", "right_context_prob", "limited_left_context_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"dynchunktrain_config_sampler.{name} must be a probability in [0, 1], got {value}")
        self.chunk_sizes = tuple(self.chunk_sizes)
        if not self.chunk_sizes or any(not isinstance(c, int) or c < 1 for c in self.chunk_sizes):
            raise ConfigError(f"dynchunktrain_config_sampler.chunk_sizes must be encoder frame counts >= 1, "
                              f"got {list(self.chunk_sizes)}")
        if not 1 <= self.right_frames_min <= self.right_frames_max:
            raise ConfigError(f"dynchunktrain_config_sampler: need 1 <= right_frames_min <= right_frames_max, got "
                              f"{self.right_frames_min}..{self.right_frames_max}")
        if not 1 <= self.left_context_frames_min <= self.left_context_frames_max:
            raise ConfigError("dynchunktrain_config_sampler: need 1 <= left_context_frames_min <= "
                              f"left_context_frames_max, got {self.left_context_frames_min}.."
                              f"{self.left_context_frames_max}")

    @staticmethod
    def _draw(prob: float) -> bool:
        return torch.rand((1,)).item() < prob

    @staticmethod
    def _integer(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,)).item())

    def __call__(self, stage: sb.Stage) -> Optional[DynChunkTrainConfig]:
        if stage == sb.Stage.VALID:
            return self.valid_config
        if stage == sb.Stage.TEST:
            return self.test_config
        if stage != sb.Stage.TRAIN:
            raise ConfigError(f"unknown stage {stage}")
        if not self._draw(self.chunkwise_prob):
            return None
        chunk = self.chunk_sizes[self._integer(0, len(self.chunk_sizes) - 1)]
        right = self._integer(self.right_frames_min, self.right_frames_max) if self._draw(
            self.right_context_prob) else 0
        left = None
        if self._draw(self.limited_left_context_prob):
            frames = self._integer(self.left_context_frames_min, self.left_context_frames_max)
            left = max(1, math.ceil(frames / chunk))
        return ChunkConfig(chunk, left, right)


__all__ = ["ChunkConfig", "DynChunkLookaheadSampler", "LookaheadEncoderWrapper", "chunk_attention_mask",
           "describe", "encode_masked", "right_frames", "with_right_frames"]
