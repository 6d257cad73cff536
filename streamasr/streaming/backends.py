"""Encoder backends of the streaming engine: one protocol, chosen once per recognizer.

A backend turns one chunk into projected encoder frames ``[B, C, J]`` (what the joiner
sees) with their valid counts ``[B]``, and carries its state. Its ``input_kind`` says
what the chunk is: ``window`` (the chunk's exact Fbank window, ``WindowPath``) or
``frames`` (encoder input frames ``[B, n, F]``, the CNN's output):

* ``StepBackend`` (the engine's default, ``window``): the whole model's streaming step
  (``streamasr.streaming.step``: normaliser, CNN, cache-aware encoder with fixed-shape
  tensor state, projection) in PyTorch; states of streams at different positions stack
  into one batch. The ONNX backend (``streamasr.streaming.onnx``) runs the same step
  exported.
* ``FixedShapeBackend`` (``frames``): the cache-aware encoder alone, after our
  ``FrontEnd``; the reference the step is checked against.
* ``ContextBackend``: SpeechBrain's own ``encode_streaming`` contexts, kept as the
  reference path for the two cases a fixed shape cannot serve: unlimited left context
  (every past frame is kept) and the stock front end (whose chunks are not on the
  training grid, so its outputs must equal stock ``StreamingASR`` exactly). Its streams
  advance together; it cannot stack states.

Nothing above this protocol knows which backend runs.
"""

from __future__ import annotations

import os
from typing import Optional, Protocol, Sequence, runtime_checkable

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.dct import right_frames
from streamasr.decoding.search import Search
from streamasr.errors import ConfigError
from streamasr.model import AsrModel
from streamasr.modes import BACKENDS
from streamasr.streaming.encoder import make_encoder_context
from streamasr.streaming.fixed import CacheAwareEncoder, EncoderState, stack_states, unstack_states
from streamasr.streaming.onnx import OnnxBackend, OnnxFolder, OnnxModel
from streamasr.streaming.step import StreamingStep


@runtime_checkable
class EncoderBackend(Protocol):
    """What the recogniser needs from a backend: encoder steps over a batch state that
    stacks and unstacks (sherpa-onnx's ``RunEncoder`` / ``StackStates``), and ``search``:
    the backend's own search over its decoder and joiner graphs, or None when the
    model's (PyTorch) search runs."""

    name: str
    can_stack: bool
    input_kind: str  # "window" or "frames"
    search: Optional[Search]

    def init_state(self, batch_size: int) -> object: ...

    def encode(self, features: torch.Tensor, lengths: torch.Tensor, state: object
               ) -> tuple[torch.Tensor, torch.Tensor, object]: ...

    def stack_states(self, states: Sequence[object]) -> object: ...

    def unstack_states(self, state: object) -> list[object]: ...


class _PyTorchFixedState:
    """What the PyTorch backends with fixed-shape state share: ``step`` (a module with
    ``initial_state``) on ``model``'s device, states that stack."""

    can_stack = True
    search = None  # the model's
    model: AsrModel
    step: torch.nn.Module

    def init_state(self, batch_size: int) -> EncoderState:
        return self.step.initial_state(batch_size, self.model.device, self.model.dtype)

    def stack_states(self, states: Sequence[EncoderState]) -> EncoderState:
        return stack_states(states)

    def unstack_states(self, state: EncoderState) -> list[EncoderState]:
        return unstack_states(state)


class FixedShapeBackend(_PyTorchFixedState):
    """The cache-aware encoder step in PyTorch, then ``proj_enc``."""

    name = "torch-frames"
    input_kind = "frames"

    def __init__(self, model: AsrModel, config: DynChunkTrainConfig):
        self.model = model
        self.step = CacheAwareEncoder(model.encoder, config).eval()

    def encode(self, src: torch.Tensor, lengths: torch.Tensor, state: EncoderState
               ) -> tuple[torch.Tensor, torch.Tensor, EncoderState]:
        missing = self.step.geometry.chunk_frames + self.step.geometry.right_frames - src.shape[1]
        if missing > 0:  # a stream's last chunk
            src = torch.nn.functional.pad(src, (0, 0, 0, missing))
        out, state = self.step.step(src, lengths, state)
        return self.model.encoder_proj(out), lengths.clamp(max=self.step.geometry.chunk_frames), state


class StepBackend(_PyTorchFixedState):
    """The whole model's streaming step (``StreamingStep``) in PyTorch."""

    name = "torch"
    input_kind = "window"

    def __init__(self, model: AsrModel, config: DynChunkTrainConfig):
        self.model = model
        self.step = StreamingStep(model.front_end, model.encoder, model.encoder_proj, config).eval()

    def encode(self, window: torch.Tensor, lengths: torch.Tensor, state: EncoderState
               ) -> tuple[torch.Tensor, torch.Tensor, EncoderState]:
        return self.step.step(window, lengths, state)


class ContextBackend:
    """SpeechBrain's ``encode_streaming`` with its context objects (lock-step batches).
    A chunk's padding frames are dropped before the call (SpeechBrain streams a short
    last chunk as it is)."""

    name = "speechbrain-context"
    can_stack = False
    search = None  # the model's
    input_kind = "frames"

    def __init__(self, model: AsrModel, config: DynChunkTrainConfig):
        if right_frames(config):
            raise ConfigError("look-ahead (right context) runs on the fixed-shape streaming state only, which needs "
                              "a finite left context and the exact front end (SpeechBrain's streaming contexts "
                              "have no look-ahead)")
        self.model = model
        self.config = config

    def init_state(self, batch_size: int) -> object:
        return make_encoder_context(self.model.encoder, self.config)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor, state: object
               ) -> tuple[torch.Tensor, torch.Tensor, object]:
        valid = int(lengths.max())
        if bool((lengths != valid).any()):
            raise ConfigError("SpeechBrain's streaming contexts need every stream of a batch at the same position")
        out = self.model.encoder.encode_streaming(src[:, :valid], state)
        return self.model.encoder_proj(out), lengths, state

    def stack_states(self, states: Sequence[object]) -> object:
        raise ConfigError("SpeechBrain's streaming contexts cannot be stacked (unlimited left context or the "
                          "stock front end): their streams must start and advance together")

    def unstack_states(self, state: object) -> list[object]:
        raise ConfigError("SpeechBrain's streaming contexts cannot be unstacked")


def default_backend(model: AsrModel, config: DynChunkTrainConfig, feature_path: str) -> EncoderBackend:
    """The streaming step (fixed-shape state), except for the two reference cases
    (unlimited left context, the stock front end), which stay on SpeechBrain's contexts."""
    if isinstance(model, OnnxModel):
        return make_backend(model, config, feature_path, "onnx", model.onnx.meta["int8"])
    if config.left_context_size is None or feature_path == "stock":
        return ContextBackend(model, config)
    return StepBackend(model, config)




def make_backend(model: AsrModel, config: DynChunkTrainConfig, frontend: str = "exact", backend: str = "torch",
                 int8: bool = False, threads: int | None = None,
                 onnx_folder: str | os.PathLike | None = None) -> EncoderBackend:
    """The backend called ``backend`` for a recogniser: ``torch`` (the default choice of
    ``default_backend``) or ``onnx``: onnxruntime on ``onnx_folder``, an exported folder
    of this cell (the runtime opens folders; ``streamasr.engine`` exports a PyTorch
    model's cell on demand). ``ConfigError`` for what ONNX cannot run: unlimited left
    context, the stock front end, an unknown name, a missing folder."""
    if isinstance(model, OnnxModel):  # an ONNX folder runs its own cell, on onnxruntime
        if backend != "onnx" or int8 != model.onnx.meta["int8"]:
            raise ConfigError(f"{model.source} is an ONNX folder{' (int8)' if model.onnx.meta['int8'] else ''}: "
                              "it runs with --backend onnx" + (" --int8" if model.onnx.meta["int8"] else ""))
        ours = (config.chunk_size, config.left_context_size, right_frames(config))
        theirs = (model.config.chunk_size, model.config.left_context_size, right_frames(model.config))
        if ours != theirs or frontend != "exact":
            ms = model.geometry.chunk_ms
            raise ConfigError(f"{model.source} runs {ms(theirs[0]):g} ms chunks with {theirs[1]} left chunks and "
                              f"{ms(theirs[2]):g} ms look-ahead, the exact front end only; asked {ms(ours[0]):g} ms / "
                              f"{ours[1]} / {ms(ours[2]):g} ms / {frontend}")
        return model.backend()
    if backend == "torch":
        if int8:
            raise ConfigError("--int8 needs --backend onnx")
        return default_backend(model, config, frontend)
    if backend != "onnx":
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if config.left_context_size is None:
        raise ConfigError("--backend onnx needs a finite left context (unlimited left context is not a fixed "
                          "shape); use --backend torch for it")
    if frontend != "exact":
        raise ConfigError("--backend onnx runs the exact front end only (--frontend stock is SpeechBrain's path)")
    if onnx_folder is None:
        raise ConfigError("--backend onnx on a PyTorch model needs its exported cell: build the recogniser with "
                          "streamasr.engine (it exports on demand), or export it (streamasr export-onnx)")
    return OnnxBackend(OnnxFolder(onnx_folder, threads=threads), model.search.max_symbols_per_step)
