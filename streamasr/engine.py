"""One engine spec and one factory: how every caller builds its streaming recogniser.

``EngineSpec`` says everything a recogniser is made of: the cell (chunk, left context,
look-ahead, ``Cell``), the feature path (``exact`` / ``stock``), the backend (``torch`` /
``onnx``, ``int8``), threads, the decoding (``streamasr.decoding.Decoding``: greedy,
beam K, LM, LODR, hotwords, n-best) and endpointing. ``transcribe``, ``serve``,
``Transcriber``, ``evaluate`` and the benchmarks build their engine with
``build_recognizer(model, spec)``; the default cell and the rule that an ONNX folder
runs its own cell are written here once.

This module sits above the runtime (``streamasr.streaming``) and the exporters
(``streamasr.export``): choosing ``backend="onnx"`` for a PyTorch model exports the cell
into the model's ONNX cache when it is missing (``export.onnx.cached_onnx_folder``), and
the runtime only opens the folder. The runtime itself never writes a model folder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional

from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.dct import right_frames
from streamasr.decoding import Decoding
from streamasr.export.onnx import cached_onnx_folder
from streamasr.model import AsrModel
from streamasr.streaming.backends import EncoderBackend, make_backend
from streamasr.streaming.config import chunk_config
from streamasr.streaming.endpoint import Endpointing
from streamasr.streaming.onnx import OnnxModel
from streamasr.streaming.recognizer import StreamingRecognizer
from streamasr.units import DEFAULT_STREAM_CHUNK_MS, DEFAULT_STREAM_LEFT_CHUNKS


@dataclasses.dataclass(frozen=True)
class Cell:
    """A streaming cell in the units users give: ``chunk_ms`` (a multiple of the encoder
    frame), ``left_chunks`` (None = unlimited) and ``right_ms`` of look-ahead."""

    chunk_ms: float = DEFAULT_STREAM_CHUNK_MS
    left_chunks: Optional[int] = DEFAULT_STREAM_LEFT_CHUNKS
    right_ms: float = 0.0

    def config(self, model: AsrModel) -> DynChunkTrainConfig:
        """The ``DynChunkTrainConfig`` (with look-ahead) of this cell for ``model``'s
        encoder frame; ``ConfigError`` for a value off its grid."""
        return chunk_config(model.front_end.geometry, self.chunk_ms, self.left_chunks, self.right_ms)


def model_cell(model: AsrModel) -> Cell:
    """The cell ``model`` streams when none is asked: an ONNX folder's own, else the
    default (640 ms, 4 left chunks, no look-ahead)."""
    if isinstance(model, OnnxModel):
        meta = model.onnx.meta
        return Cell(meta["chunk_ms"], model.config.left_context_size, meta.get("right_ms", 0.0))
    return Cell()


@dataclasses.dataclass
class EngineSpec:
    """Everything a streaming recogniser is made of (module docstring). ``cell`` None:
    the model's own (``model_cell``). ``onnx_cache``: where ``backend="onnx"`` exports
    cells of a PyTorch model (default ``<model folder>/onnx``)."""

    cell: Optional[Cell] = None
    feature_path: str = "exact"
    backend: str = "torch"
    int8: bool = False
    threads: Optional[int] = None
    decoding: Decoding = dataclasses.field(default_factory=Decoding)
    endpointing: Optional[Endpointing] = None
    onnx_cache: Optional[str | os.PathLike] = None

    def resolved(self, model: AsrModel) -> "EngineSpec":
        """This spec with the model's own cell filled in and, for an ONNX folder, its
        backend and int8 setting (it runs only on onnxruntime, with the graphs it has)."""
        spec = dataclasses.replace(self, cell=self.cell or model_cell(model))
        if isinstance(model, OnnxModel):
            spec = dataclasses.replace(spec, backend="onnx", int8=model.onnx.meta["int8"])
        return spec


def backend_for(model: AsrModel, config: DynChunkTrainConfig, spec: EngineSpec) -> EncoderBackend:
    """The encoder backend ``spec`` asks for on ``config``: for ``onnx`` on a PyTorch
    model, its cached ONNX folder of that cell (exported first when missing or made
    from other weights)."""
    folder: Optional[Path] = None
    if (spec.backend == "onnx" and not isinstance(model, OnnxModel) and config.left_context_size is not None
            and spec.feature_path == "exact"):
        folder = cached_onnx_folder(model, config, spec.int8, spec.onnx_cache)
    return make_backend(model, config, spec.feature_path, spec.backend, spec.int8, spec.threads, onnx_folder=folder)


def build_recognizer(model: AsrModel, spec: EngineSpec, config: Optional[DynChunkTrainConfig] = None
                     ) -> StreamingRecognizer:
    """The recogniser ``spec`` describes for ``model`` (``config``: a cell already in
    encoder frames, as evaluate's grid has it; else ``spec.cell``)."""
    spec = spec.resolved(model)
    config = config or spec.cell.config(model)
    return StreamingRecognizer(model, config, spec.feature_path, backend_for(model, config, spec),
                               endpointing=spec.endpointing, decoding=spec.decoding)


def describe(model: AsrModel, config: DynChunkTrainConfig) -> str:
    """``640 ms chunks, 4 left chunks(, 160 ms look-ahead)``: what a command prints."""
    ms = model.geometry.chunk_ms
    text = f"{ms(config.chunk_size):g} ms chunks, {config.left_context_size} left chunks"
    return text + (f", {ms(right_frames(config)):g} ms look-ahead" if right_frames(config) else "")


__all__ = ["Cell", "EngineSpec", "backend_for", "build_recognizer", "describe", "model_cell"]
