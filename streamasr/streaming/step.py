"""One streaming step of the whole model as a tensor-only module: log-mel window ->
normalisation -> CNN -> cache-aware encoder -> projection to the joiner, with the
encoder's fixed-shape caches in and out. The PyTorch backend runs it; the ONNX encoder
is this module exported as it is, so both compute the same graph.

Inputs (NeMo's cache-aware port names and layout):

* ``audio_signal`` ``[B, n_mels, T_w]``: the Fbank frames of the chunk's exact window
  (``streamasr.frontend.paths.WindowPath``): ``margin`` encoder frames of history, the
  ``C`` chunk frames, the ``R`` look-ahead frames (``streamasr.dct``; usually 0) and the
  front end's look-ahead, ``T_w = subsampling x (C + R + margin) + 1`` frames; the next
  window starts ``subsampling x C`` frames later. A window that starts before the stream did (the first chunks) is
  left-padded, one that the stream's end cuts short is right-padded;
* ``length`` ``[B]``: valid Fbank frames counted from the window's first frame, left
  padding included (``T_w`` except at a stream's end);
* ``cache_last_channel``, ``cache_last_time``, ``cache_last_channel_len``: see
  ``streamasr.streaming.fixed``. The left padding is not an input: it follows from the
  frames already seen (``cache_last_channel_len``).

Outputs: ``outputs`` ``[B, J, C]`` (projected encoder frames, time last as in NeMo),
``encoded_lengths`` ``[B]`` (valid frames of the chunk, at most C: the look-ahead frames
are inputs only), the three next caches.

Why our own CNN pass (``WindowConvFrontEnd``) on SpeechBrain's CNN weights: its
``Conv2d`` pads time with *reflection* at the utterance edges, and a fixed-shape window
puts those edges at a different place per stream. The pass pads every block's input
explicitly, reflecting at each stream's own first and last valid frame, so the valid
outputs equal the whole-utterance CNN's (tested, and through the engine equal to the
masked simulation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.errors import ConfigError
from streamasr.frontend import FrontEnd
from streamasr.streaming.fixed import CacheAwareEncoder, EncoderState


class WindowConvFrontEnd(torch.nn.Module):
    """SpeechBrain's ``ConvolutionFrontEnd`` (blocks of Conv2d with 'same' reflect
    padding, LayerNorm, activation, dropout) on a window whose valid frames are
    ``[first, end)`` per stream; shares the CNN's weights."""

    def __init__(self, cnn: torch.nn.Module):
        super().__init__()
        self.blocks = []
        for block in cnn.children():
            if getattr(block, "reduce_conv", None) is not None:
                raise ConfigError("the streaming step does not support residual CNN blocks")
            layers = dict(block.convs.named_children())
            conv = layers["conv_0"]
            if len([name for name in layers if name.startswith("conv_")]) != 1:
                raise ConfigError("the streaming step supports one convolution per CNN block")
            if conv.padding != "same" or conv.padding_mode != "reflect" or tuple(conv.kernel_size) != (3, 3):
                raise ConfigError("the streaming step supports 3x3 convolutions with 'same' reflect padding")
            rest = [module for name, module in layers.items() if name != "conv_0"]
            self.blocks.append((conv, rest))
        for index, (conv, rest) in enumerate(self.blocks):
            self.add_module(f"conv_{index}", conv)
            for position, module in enumerate(rest):
                self.add_module(f"block_{index}_{position}", module)

    def forward(self, feats: torch.Tensor, first: torch.Tensor, end: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """feats ``[B, T, n_mels]``, valid frames ``[first, end)`` per stream -> CNN output
        ``[B, T', channels x freq]`` with its valid range."""
        x = feats
        for conv, rest in self.blocks:
            x = self._conv(conv, x, first, end)
            for module in rest:
                x = module(x)
            first = torch.div(first, conv.stride[-1], rounding_mode="floor")
            end = first + torch.div(end - first * conv.stride[-1] + conv.stride[-1] - 1, conv.stride[-1],
                                    rounding_mode="floor")
        return x.flatten(start_dim=2), first, end

    @staticmethod
    def _conv(conv: torch.nn.Module, x: torch.Tensor, first: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """SpeechBrain's Conv2d (input ``[B, T, F]`` or ``[B, T, F, C]``, output ``[B, T', F', C]``)
        with time reflected at ``first`` and ``end`` instead of at the window's edges."""
        y = x.transpose(1, -1)  # [B, F, T] or [B, C, F, T]
        if y.dim() == 3:
            y = y.unsqueeze(1)
        y = F.pad(y, (0, 0, 1, 1), mode="reflect")  # frequency: as SpeechBrain
        y = F.pad(y, (1, 1))  # time: one slot on each side, filled below
        frames = y.shape[-1]  # T + 2; window frame t sits at t + 1
        positions = torch.arange(frames, device=y.device)[None, :]
        source = positions.expand(y.shape[0], frames)
        # the slot before the first valid frame reflects the frame after it, the slot
        # after the last valid frame the one before it (SpeechBrain's reflect padding)
        source = torch.where(positions == first[:, None], first[:, None] + 2, source)
        source = torch.where(positions == end[:, None] + 1, end[:, None] - 1, source)
        index = source[:, None, None, :].expand(y.shape[0], y.shape[1], y.shape[2], frames)
        y = torch.gather(y, 3, index)
        out = conv.conv(y)  # [B, C, F', T']
        return out.transpose(1, -1)


class StreamingStep(torch.nn.Module):
    """The whole model's streaming step (module docstring); shares the model's weights."""

    def __init__(self, front_end: FrontEnd, encoder: torch.nn.Module, encoder_proj: torch.nn.Module,
                 config: DynChunkTrainConfig):
        super().__init__()
        self.normalize = front_end.normalize
        self.cnn = WindowConvFrontEnd(front_end.cnn)
        self.encoder = CacheAwareEncoder(encoder, config)
        self.encoder_proj = encoder_proj
        geometry = front_end.geometry
        self.subsampling = geometry.subsampling
        self.margin = geometry.margin_frames
        self.chunk = config.chunk_size
        self.right = self.encoder.geometry.right_frames
        self.window_frames = self.subsampling * (self.chunk + self.right + self.margin) + 1
        self.shift_frames = self.subsampling * self.chunk
        if self.margin > self.encoder.geometry.max_cache_len:
            raise ConfigError(f"the caches keep {self.encoder.geometry.max_cache_len} past frames, fewer than the "
                              f"front end's {self.margin} frames of history")

    def initial_state(self, batch_size: int = 1, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float32) -> EncoderState:
        return self.encoder.initial_state(batch_size, device, dtype)

    def forward(self, audio_signal: torch.Tensor, length: torch.Tensor, cache_last_channel: torch.Tensor,
                cache_last_time: torch.Tensor, cache_last_channel_len: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = audio_signal.transpose(1, 2)  # [B, T_w, n_mels]
        batch = feats.shape[0]
        feats = self.normalize(feats, torch.ones(batch, device=feats.device))
        missing_history = self.margin - cache_last_channel_len.clamp(max=self.margin)  # encoder frames
        first = missing_history * self.subsampling
        src, first_out, end_out = self.cnn(feats, first, length)
        src = src[:, self.margin : self.margin + self.chunk + self.right]
        valid = (end_out - self.margin).clamp(min=0, max=self.chunk + self.right)  # chunk + look-ahead
        out, *caches = self.encoder(src, valid, cache_last_channel, cache_last_time, cache_last_channel_len)
        return (self.encoder_proj(out).transpose(1, 2), valid.clamp(max=self.chunk), *caches)

    def step(self, window: torch.Tensor, length: torch.Tensor, state: EncoderState
             ) -> tuple[torch.Tensor, torch.Tensor, EncoderState]:
        """``forward`` on an ``EncoderState``: window ``[B, T_w, n_mels]`` -> projected
        encoder frames ``[B, C, J]``, valid frames ``[B]``, next state."""
        if state.geometry != self.encoder.geometry:
            raise ConfigError(f"encoder state is for {state.geometry}, this step for {self.encoder.geometry}")
        if window.shape[0] != state.batch_size or window.shape[1] != self.window_frames:
            raise ConfigError(f"window {tuple(window.shape)} does not fit batch {state.batch_size} x "
                              f"{self.window_frames} Fbank frames")
        out, lengths, *caches = self(window.transpose(1, 2), length, *state.tensors())
        return out.transpose(1, 2), lengths, EncoderState(*caches, self.encoder.geometry)
