"""``streamasr evaluate``: the sweep over the grid, in this process or spread over
worker processes (one stream each, so measured compute stays a single stream's)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig
from tqdm import tqdm

from streamasr.dct import with_right_frames
from streamasr.decoding import Decoding, as_decoding
from streamasr.engine import EngineSpec
from streamasr.errors import ConfigError, OutputExistsError
from streamasr.evaluate.cells import CellResult, Utterance, load_utterances
from streamasr.evaluate.grid import DEFAULT_CHUNK_MS, GridCell, grid_cells, parse_grid
from streamasr.evaluate.passes import evaluate_cell
from streamasr.evaluate.report import RESULT_FILES, write_results
from streamasr.export.onnx import cached_onnx_folder
from streamasr.frontend.paths import validate_feature_path
from streamasr.model import AsrModel, load_model
from streamasr.pools import worker_pool


def check_output(folder: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse (before any work) a folder that already holds results, unless overwrite."""
    folder = Path(folder)
    existing = [name for name in RESULT_FILES if (folder / name).exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{folder} already holds results ({', '.join(existing)}); pass --overwrite or another folder"
        )
    return folder


_WORKER: dict = {}


def _worker_init(model_path: str, device: str, manifest: str, data_root: Optional[str], limit: Optional[int],
                 threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["model"] = load_model(model_path, device)
    _WORKER["utterances"] = load_utterances(manifest, data_root, limit)


def _worker_cell(args: tuple) -> CellResult:
    cell, engine, streaming = args
    return evaluate_cell(_WORKER["model"], _WORKER["utterances"], cell, engine, streaming)


def run_sweep(model: AsrModel, utterances: list[Utterance], cells: Sequence[GridCell], engine: EngineSpec,
              streaming: bool = True, progress: bool = True) -> list[CellResult]:
    """Every cell of the grid (``grid_cells``: full context, masked, first), masked and
    streaming, in this process, with the recogniser ``engine`` describes."""
    return [evaluate_cell(model, utterances, cell, engine, streaming)
            for cell in tqdm(cells, desc="grid", unit="cell", disable=not progress)]


def run_sweep_parallel(worker_args: tuple, cells: Sequence[GridCell], jobs: int, engine: EngineSpec,
                       streaming: bool = True, progress: bool = True) -> list[CellResult]:
    """The same grid spread over ``jobs`` processes (one stream each, ``engine.threads``
    threads each, so the measured compute stays that of a single stream)."""
    threads = engine.threads or 1
    tasks = [(cell, engine, streaming) for cell in cells]
    with worker_pool(jobs, initializer=_worker_init, initargs=(*worker_args, threads)) as pool:
        return list(tqdm(pool.map(_worker_cell, tasks), total=len(tasks), desc="grid", unit="cell", disable=not progress))


def evaluate(
    model_path: str,
    manifest: str,
    output: str,
    chunk_values: Sequence[str] = tuple(str(v) for v in DEFAULT_CHUNK_MS),
    unit: str = "ms",
    left_values: Sequence[str] = ("2", "4", "unlimited"),
    right_values: Sequence[str] = ("0",),
    left_unit: str = "chunks",
    data_root: Optional[str] = None,
    overwrite: bool = False,
    threads: int = 1,
    jobs: int = 1,
    limit: Optional[int] = None,
    streaming: bool = True,
    device: str = "cpu",
    progress: bool = True,
    frontend: str = "exact",
    backend: str = "torch",
    int8: bool = False,
    decoding: "str | Decoding" = "greedy",
    beam: int = 4,
) -> list[CellResult]:
    """Everything behind ``streamasr evaluate``; all input errors raise before work.
    ``jobs`` > 1 evaluates grid cells in parallel processes. ``frontend`` selects the
    true-streaming feature path: ``exact`` (ours) or ``stock`` (SpeechBrain's
    ``StreamingASR``, i.e. what an exported model gives under stock SpeechBrain).
    ``right_values``: look-ahead in ms (``streamasr.dct``); ``left_unit`` ``ms``: the left
    contexts are durations, the same past for every chunk size."""
    validate_feature_path(frontend)
    decoding = as_decoding(decoding, beam)
    engine = EngineSpec(feature_path=frontend, backend=backend, int8=int8, threads=threads, decoding=decoding)
    if backend == "onnx" and frontend != "exact":
        raise ConfigError("--backend onnx runs the exact front end only (--frontend stock is SpeechBrain's path)")
    folder = check_output(output, overwrite)
    model = load_model(model_path, device)
    frame_ms = model.geometry.frame_ms
    chunks, lefts, rights = parse_grid(chunk_values, unit, left_values, frame_ms, right_values, left_unit)
    cells = grid_cells(chunks, lefts, rights, frame_ms if left_unit == "ms" else None)
    if backend == "onnx" and None in lefts:
        raise ConfigError("--backend onnx needs finite left contexts (unlimited is not a fixed shape): "
                          "drop 'unlimited' from --left-chunks")
    if streaming and None in lefts and any(rights):
        raise ConfigError("look-ahead streams on the fixed-shape state, which needs a finite left context: drop "
                          "'unlimited' from the left contexts, or pass --masked-only")
    if frontend == "stock" and any(rights):
        raise ConfigError("--frontend stock streams as SpeechBrain's StreamingASR does, which has no look-ahead")
    utterances = load_utterances(manifest, data_root, limit)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if jobs > 1:  # each worker process loads its own copy of the model and audio
        worker_args = (str(model_path), device, str(manifest), data_root, limit)
        if backend == "onnx" and streaming:  # export the cells once, before the workers look for them
            for cell in cells[1:]:
                cached_onnx_folder(model, with_right_frames(DynChunkTrainConfig(cell.chunk, cell.left), cell.right),
                                   int8)
        results = run_sweep_parallel(worker_args, cells, jobs, engine, streaming, progress)
    else:
        results = run_sweep(model, utterances, cells, engine, streaming, progress)
    meta = {
        "model": str(model_path),
        "manifest": str(manifest),
        "threads": threads,
        "jobs": jobs,
        "frontend": frontend,
        "backend": backend + (" int8" if int8 else ""),
        "decoding": decoding.label(),
        "seconds": round(time.time() - start, 1),
        "frame_ms": model.geometry.frame_ms,
        "lookahead_ms": model.geometry.lookahead_ms,
    }
    write_results(results, folder, meta)
    return results
