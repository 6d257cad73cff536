"""The public API (``streamasr/__init__.py``), the engine factory (``streamasr.engine``)
and the runtime's signatures."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

import streamasr
from helpers.common import REPO, reference_text
from streamasr.engine import Cell, EngineSpec, build_recognizer, model_cell
from streamasr.errors import ConfigError
from streamasr.streaming import StreamingRecognizer
from streamasr.streaming.backends import make_backend

# the runtime and what builds it: streams, searches, backends, the engine, live input, the server, evaluation,
# and the model with its parts and units (data, losses and export still have functions over 8 parameters)
RUNTIME = ["streaming", "decoding", "live", "serve", "engine.py", "frontend", "evaluate", "model.py", "parts.py",
           "dct.py", "units.py", "tokenizer.py", "checkpoints.py"]
MAX_PARAMETERS = 8


def test_the_readme_example_transcribes_a_file_as_the_engine_does(exported, model, wavs):
    loaded = streamasr.load_model(str(exported))
    assert streamasr.transcribe_file(wavs[1], loaded) == reference_text(model, wavs[1]).strip()
    recognizer = streamasr.build_recognizer(loaded, streamasr.EngineSpec(streamasr.Cell(320, 8)))
    assert (recognizer.config.chunk_size, recognizer.config.left_context_size) == (8, 8)
    assert isinstance(recognizer.create_stream(), object) and streamasr.__version__


def test_import_streamasr_loads_no_torch():
    probe = "import sys, streamasr; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_the_spec_builds_the_recognizer_a_caller_would_assemble_by_hand(model, utterances):
    by_hand = StreamingRecognizer(model, DynChunkTrainConfig(8, 2), decoding="beam", beam=3)
    spec = EngineSpec(Cell(320, 2), decoding=streamasr.Decoding("beam", 3))
    built = build_recognizer(model, spec)
    for utt in utterances[:2]:
        assert built.transcribe(utt.wav)[0].result.tokens == by_hand.transcribe(utt.wav)[0].result.tokens


def test_the_default_cell_and_an_onnx_folders_own(model, onnx_folder):
    from streamasr.streaming.onnx import OnnxModel

    assert model_cell(model) == Cell(640.0, 4, 0.0)
    alone = OnnxModel(onnx_folder)  # 320 ms chunks, 2 left chunks
    assert model_cell(alone) == Cell(320.0, 2, 0.0)
    assert EngineSpec().resolved(alone).backend == "onnx"
    with pytest.raises(ConfigError, match="runs 320 ms chunks with 2 left chunks"):
        build_recognizer(alone, EngineSpec(Cell(640, 4)))


def test_the_runtime_opens_onnx_folders_and_never_exports(model):
    with pytest.raises(ConfigError, match="needs its exported cell: build the recogniser with streamasr.engine"):
        make_backend(model, DynChunkTrainConfig(8, 2), "exact", "onnx")


def _public_functions(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        items = [node] + (list(node.body) if isinstance(node, ast.ClassDef) else [])
        for item in items:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_") or (
                    isinstance(item, ast.FunctionDef) and item.name == "__init__"):
                arguments = item.args
                names = [a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs]
                names = [name for name in names if name not in ("self", "cls")]
                owner = f"{node.name}." if isinstance(node, ast.ClassDef) and item is not node else ""
                yield f"{path.relative_to(REPO)}:{owner}{item.name}", len(names)


def test_no_public_runtime_function_takes_more_than_8_parameters():
    package = REPO / "streamasr"
    files = []
    for place in RUNTIME:
        target = package / place
        files += [target] if target.suffix == ".py" else sorted(target.rglob("*.py"))
    wide = [f"{name} ({count})" for path in files for name, count in _public_functions(path)
            if count > MAX_PARAMETERS]
    assert wide == []


def test_both_models_satisfy_the_model_contract_and_both_searches_the_search_contract(model, onnx_folder):
    from streamasr.decoding import BeamSearch, GreedySearch
    from streamasr.decoding.search import Search
    from streamasr.streaming.backends import EncoderBackend, StepBackend
    from streamasr.streaming.contracts import StreamingModel
    from streamasr.streaming.onnx import OnnxModel

    alone = OnnxModel(onnx_folder)
    assert isinstance(model, StreamingModel) and isinstance(alone, StreamingModel)
    greedy = model.search
    beam = BeamSearch(greedy.decoder, greedy.joiner, greedy.blank_id, beam_size=2)
    assert isinstance(greedy, GreedySearch) and isinstance(greedy, Search) and isinstance(beam, Search)
    assert (greedy.holds_pending, beam.holds_pending) == (False, True)
    backends = [StepBackend(model, DynChunkTrainConfig(8, 2)), alone.backend()]
    assert all(isinstance(b, EncoderBackend) for b in backends)
    assert backends[0].search is None and isinstance(backends[1].search, Search)
