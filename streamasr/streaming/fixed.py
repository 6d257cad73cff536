"""The cache-aware encoder step: fixed-shape tensor state, batch on dim 0, streams at
different positions in one call.

Why our own step instead of SpeechBrain's ``encode_streaming``: SpeechBrain carries
Python context objects whose cached tensors grow from nothing up to the left-context
size (``None`` before the first chunk), and every stream of a batch must start and
advance together. That state cannot be stacked across streams that joined at different
times, and it cannot be exported to ONNX. Here the same math runs on SpeechBrain's own
modules and weights with caches of fixed shape (the contract of NeMo's cache-aware
Conformer, names included):

* ``cache_last_channel`` ``[B, layers, N, D]``: each layer's attention input (after its
  first feed-forward half-step) for the last ``N = left_chunks x chunk`` frames
  (SpeechBrain's ``mha_left_context``);
* ``cache_last_time`` ``[B, layers, D, P]``: each layer's convolution-module input for
  the last ``P = (kernel - 1) // 2`` frames (SpeechBrain's ``dcconv_left_context``);
* ``cache_last_channel_len`` ``[B]`` (int64): how many past frames the caches hold,
  ``min(frames seen, max(N, P))``, from which the masks are built.

A zero-filled cache is not exact by itself: SpeechBrain's convolution pads with zeros
*after* its LayerNorm / pointwise / GLU bottleneck, so the step zeroes the bottleneck
output of cache frames that do not exist yet, as well as masking them as attention
keys. A chunk shorter than ``C`` (a stream's last) is given with its valid length: its
padding frames are masked the same way, so streams of different lengths share a batch.

Look-ahead (``right_frames`` R > 0, ``streamasr.dct``): the input is the chunk's C
frames and the R frames after it. In the first layer the C chunk queries attend to
cache + C + R keys; then the R frames are dropped. Every cache is taken from the C
frames only (never from the R frames, whose activations the next chunk recomputes with
its own look-ahead), and ``cache_last_channel_len`` grows by C. At a stream's end the
valid count covers the look-ahead frames that exist; fewer than R is what the masked
pass sees there too.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.dct import right_frames
from streamasr.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class CacheGeometry:
    """Shapes of the fixed caches for one (chunk, left context) and one encoder."""

    chunk_frames: int  # C
    left_chunks: int  # L
    layers: int
    d_model: int  # D
    conv_frames: int  # P = (kernel - 1) // 2
    right_frames: int = 0  # R: look-ahead frames after the chunk (first layer's attention)

    @property
    def attention_frames(self) -> int:  # N
        return self.chunk_frames * self.left_chunks

    @property
    def max_cache_len(self) -> int:
        return max(self.attention_frames, self.conv_frames)


@dataclasses.dataclass
class EncoderState:
    """The encoder's streaming state of a batch of streams (batch on dim 0 of every
    tensor); ``geometry`` says which (chunk, left context, encoder) it belongs to."""

    cache_last_channel: torch.Tensor  # [B, layers, N, D]
    cache_last_time: torch.Tensor  # [B, layers, D, P]
    cache_last_channel_len: torch.Tensor  # [B] int64
    geometry: CacheGeometry

    @property
    def batch_size(self) -> int:
        return self.cache_last_channel_len.shape[0]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.cache_last_channel, self.cache_last_time, self.cache_last_channel_len


def stack_states(states: Sequence[EncoderState]) -> EncoderState:
    """One batch from the states of several streams (any positions); the inverse of
    ``unstack_states``. ``ConfigError`` when they belong to different chunk configs or
    encoders."""
    if not states:
        raise ConfigError("stack_states needs at least one state")
    geometry = states[0].geometry
    for index, state in enumerate(states):
        if state.geometry != geometry:
            raise ConfigError(f"stack_states: state {index} is for {state.geometry}, state 0 for {geometry}; "
                              "streams of different chunk configs or models cannot share a batch")
    return EncoderState(
        torch.cat([s.cache_last_channel for s in states]),
        torch.cat([s.cache_last_time for s in states]),
        torch.cat([s.cache_last_channel_len for s in states]),
        geometry,
    )


def unstack_states(state: EncoderState) -> list[EncoderState]:
    """One state per stream (batch 1 each), views of ``state``'s tensors."""
    return [
        EncoderState(state.cache_last_channel[i : i + 1], state.cache_last_time[i : i + 1],
                     state.cache_last_channel_len[i : i + 1], state.geometry)
        for i in range(state.batch_size)
    ]


class CacheAwareEncoder(torch.nn.Module):
    """One chunk of a SpeechBrain Conformer ``TransformerASR`` (RelPosMHAXL, DCConv)
    with fixed-shape caches; shares the encoder's modules and weights.

    ``forward(src, lengths, cache_last_channel, cache_last_time, cache_last_channel_len)``:
    ``src`` ``[B, C + R, F]`` encoder input frames (the CNN front end's output: the chunk
    and its look-ahead), ``lengths`` ``[B]`` valid frames of each (``C + R``, or fewer at
    a stream's end), the
    caches as in the module docstring; returns the encoder output ``[B, C, D]`` (frames
    past ``lengths`` are meaningless) and the next caches. Tensors only, so it exports
    to ONNX as it is.
    """

    def __init__(self, encoder: torch.nn.Module, config: DynChunkTrainConfig):
        super().__init__()
        if config.left_context_size is None:
            raise ConfigError("a fixed-shape streaming state needs a finite left context "
                              "(unlimited left context keeps every past frame: not a fixed shape)")
        if config.chunk_size < 1 or config.left_context_size < 0:
            raise ConfigError(f"chunk size must be >= 1 and left context >= 0, got {config.chunk_size}, "
                              f"{config.left_context_size}")
        if getattr(encoder, "attention_type", None) != "RelPosMHAXL" or not hasattr(encoder.encoder, "layers"):
            raise ConfigError("the cache-aware step supports SpeechBrain's Conformer with RelPosMHAXL attention")
        self.transformer = encoder
        layers = encoder.encoder.layers
        conv = layers[0].convolution_module
        if conv.causal or conv.dilation != 1:
            raise ConfigError("the cache-aware step supports the non-causal, undilated Dynamic Chunk Convolution")
        self.geometry = CacheGeometry(
            chunk_frames=config.chunk_size,
            left_chunks=config.left_context_size,
            layers=len(layers),
            d_model=layers[0].norm1.norm.normalized_shape[0],
            conv_frames=conv.padding,
            right_frames=right_frames(config),
        )

    def initial_state(self, batch_size: int = 1, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float32) -> EncoderState:
        g = self.geometry
        return EncoderState(
            torch.zeros(batch_size, g.layers, g.attention_frames, g.d_model, device=device, dtype=dtype),
            torch.zeros(batch_size, g.layers, g.d_model, g.conv_frames, device=device, dtype=dtype),
            torch.zeros(batch_size, dtype=torch.long, device=device),
            g,
        )

    def step(self, src: torch.Tensor, lengths: torch.Tensor, state: EncoderState
             ) -> tuple[torch.Tensor, EncoderState]:
        """``forward`` on an ``EncoderState`` (checks the shapes first)."""
        if state.geometry != self.geometry:
            raise ConfigError(f"encoder state is for {state.geometry}, this step for {self.geometry}")
        frames = self.geometry.chunk_frames + self.geometry.right_frames
        if src.shape[0] != state.batch_size or src.shape[1] != frames:
            raise ConfigError(f"chunk input {tuple(src.shape)} does not fit batch {state.batch_size} x "
                              f"{frames} frames (chunk {self.geometry.chunk_frames} + look-ahead "
                              f"{self.geometry.right_frames})")
        out, *caches = self(src, lengths, *state.tensors())
        return out, EncoderState(*caches, self.geometry)

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, cache_last_channel: torch.Tensor,
                cache_last_time: torch.Tensor, cache_last_channel_len: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.geometry
        chunk, right, attention_frames, conv_frames = g.chunk_frames, g.right_frames, g.attention_frames, g.conv_frames
        batch = src.shape[0]
        transformer = self.transformer
        x = transformer.custom_src_module(src)
        # Relative positions over cache + chunk (+ look-ahead in the first layer): only
        # distances matter, the same embeddings SpeechBrain uses for a shorter sequence.
        pos_embs = transformer.positional_encoding(x.new_empty(batch, attention_frames + chunk, x.shape[-1]))
        first_pos_embs = pos_embs if right == 0 else transformer.positional_encoding(
            x.new_empty(batch, attention_frames + chunk + right, x.shape[-1]))

        past = cache_last_channel_len.clamp(max=g.max_cache_len)
        chunk_lengths = lengths.clamp(max=chunk)
        chunk_positions = torch.arange(chunk, device=src.device)[None]
        chunk_valid = chunk_positions < chunk_lengths[:, None]  # [B, C]
        attention_positions = torch.arange(attention_frames, device=src.device)[None]
        attention_valid = attention_positions >= (attention_frames - past.clamp(max=attention_frames))[:, None]
        key_padding_mask = ~torch.cat([attention_valid, chunk_valid], dim=1)  # [B, N + C], True = ignore
        first_key_padding_mask = key_padding_mask
        if right:
            right_valid = torch.arange(right, device=src.device)[None] < (lengths - chunk)[:, None]  # [B, R]
            first_key_padding_mask = torch.cat([key_padding_mask, ~right_valid], dim=1)  # [B, N + C + R]
        conv_positions = torch.arange(conv_frames, device=src.device)[None]
        conv_valid = torch.cat([conv_positions >= (conv_frames - past.clamp(max=conv_frames))[:, None],
                                chunk_valid], dim=1)  # [B, P + C]

        next_channel, next_time = [], []
        for index, layer in enumerate(transformer.encoder.layers):
            x = x + 0.5 * layer.ffn_module1(x)
            full = torch.cat([cache_last_channel[:, index], x], dim=1)  # [B, N + C (+ R), D]
            next_channel.append(full[:, chunk : attention_frames + chunk])  # from the C chunk frames only
            normed = layer.norm1(full)  # one object as query, key and value (SpeechBrain tests `is`)
            attended, _ = layer.mha_layer(normed, normed, normed, attn_mask=None,
                                          key_padding_mask=first_key_padding_mask if index == 0 else key_padding_mask,
                                          pos_embs=first_pos_embs if index == 0 else pos_embs)
            x = (attended + full)[:, attention_frames : attention_frames + chunk]  # look-ahead dropped
            conv_input = torch.cat([cache_last_time[:, index].transpose(1, 2), x], dim=1)  # [B, P + C, D]
            next_time.append(conv_input[:, conv_input.shape[1] - conv_frames:].transpose(1, 2))
            x = x + self._convolution(layer.convolution_module, conv_input, conv_valid)
            x = layer.norm2(x + 0.5 * layer.ffn_module2(x))
        out = transformer.encoder.norm(x)
        next_len = (past + chunk_lengths).clamp(max=g.max_cache_len)
        return out, torch.stack(next_channel, dim=1), torch.stack(next_time, dim=1), next_len

    @staticmethod
    def _convolution(module: torch.nn.Module, conv_input: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """SpeechBrain's ``ConvolutionModule`` on ``[B, P + C, D]`` (P cached frames, then
        the chunk) -> ``[B, C, D]``: the bottleneck output of frames that do not exist
        (empty cache, padding of a short chunk) is zero, as SpeechBrain's zero padding."""
        padding = module.padding
        out = module.bottleneck(module.layer_norm(conv_input).transpose(1, 2))  # [B, D, P + C]
        out = out * valid[:, None, :].to(out.dtype)
        out = F.pad(out, (0, padding))  # the future beyond the chunk: zeros
        out = F.conv1d(out, module.conv.weight, module.conv.bias, stride=1, padding=0,
                       dilation=1, groups=module.conv.groups)  # [B, D, C]
        return module.after_conv(out.transpose(1, 2))
