"""ONNX as a user runs it: the onnx backend exports the cells it needs into the model
folder once, int8 graphs run in the engine, ``streamasr export-onnx``."""

from __future__ import annotations

import shutil

from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from helpers.common import cli
from streamasr.engine import EngineSpec, backend_for
from streamasr.export.onnx import export_onnx
from streamasr.model import load_model
from streamasr.streaming import StreamingRecognizer
from streamasr.streaming.onnx import OnnxBackend, OnnxFolder


def test_the_backend_exports_cells_into_the_model_folder_once(random_model_folder, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(random_model_folder, folder)
    model = load_model(folder)
    first = backend_for(model, DynChunkTrainConfig(8, 1), EngineSpec(backend="onnx"))
    cell = folder / "onnx" / "320ms_left1"
    stamp = (cell / "encoder.onnx").stat().st_mtime_ns
    again = backend_for(model, DynChunkTrainConfig(8, 1), EngineSpec(backend="onnx"))
    assert (cell / "encoder.onnx").stat().st_mtime_ns == stamp  # reused: same checkpoint
    assert first.onnx.meta["checkpoint"] == again.onnx.meta["checkpoint"]


def test_int8_export_runs_and_stays_close(model, tmp_path, utterances):
    result = export_onnx(model, tmp_path / "int8", chunk_ms=320, left_chunks=2, int8=True)
    assert result.meta["int8"] is True
    engine = StreamingRecognizer(model, DynChunkTrainConfig(8, 2), backend=OnnxBackend(OnnxFolder(result.folder)))
    state, outputs = engine.transcribe(utterances[0].wav)
    assert outputs and outputs[-1].final


def test_export_onnx_command_line(random_model_folder, tmp_path):
    result = cli("export-onnx", random_model_folder, tmp_path / "cell", "--chunk-ms", "640", "--left-chunks", "4")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "ONNX vs PyTorch, largest difference over 5 chunks: encoder" in result.stdout.decode()
    refused = cli("export-onnx", random_model_folder, tmp_path / "x", "--left-chunks", "unlimited")
    assert refused.returncode == 2
    assert "export-onnx needs a finite --left-chunks" in refused.stderr.decode()
