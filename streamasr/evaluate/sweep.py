"""``streamasr evaluate``: the sweep over the grid, in this process or spread over
worker processes (one stream each, so measured compute stays a single stream's)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig
from tqdm import tqdm

from streamasr.dct import with_right_frames
from streamasr.engine import EngineSpec
from streamasr.errors import ConfigError, OutputExistsError
from streamasr.evaluate.cells import CellResult, Utterance, load_utterances
from streamasr.evaluate.grid import Grid, GridCell
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


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """How ``evaluate`` runs, apart from the engine and the grid: ``data_root`` (the
    manifest's ``$data_root``; default its folder), ``limit`` (only the N shortest
    utterances), ``streaming`` (true chunk-by-chunk streaming too, not only the masked
    simulation), ``jobs`` (> 1: grid cells in parallel processes), ``device`` (of the
    model), ``overwrite`` (replace results in the output folder), ``progress`` (a bar)."""

    data_root: Optional[str] = None
    limit: Optional[int] = None
    streaming: bool = True
    jobs: int = 1
    device: str = "cpu"
    overwrite: bool = False
    progress: bool = True


def evaluate(model_path: str | os.PathLike, manifest: str | os.PathLike, output: str | os.PathLike,
             grid: Grid = Grid(), engine: Optional[EngineSpec] = None, options: SweepOptions = SweepOptions(),
             ) -> list[CellResult]:
    """Everything behind ``streamasr evaluate``: every cell of ``grid`` (and full
    context) on ``manifest``, written to ``output``; all input errors raise before work.

    ``engine``: the recogniser of every cell (its ``cell`` is not used: the grid gives
    the cells; ``threads`` None is 1 per stream; default greedy, PyTorch, exact front
    end). Its ``feature_path`` selects the true-streaming features: ``exact`` (ours) or
    ``stock`` (SpeechBrain's ``StreamingASR``, i.e. what an exported model gives under
    stock SpeechBrain)."""
    engine = engine or EngineSpec()
    frontend, backend, int8 = engine.feature_path, engine.backend, engine.int8
    validate_feature_path(frontend)
    engine = dataclasses.replace(engine, threads=engine.threads or 1, decoding=engine.decoding.check())
    if backend == "onnx" and frontend != "exact":
        raise ConfigError("--backend onnx runs the exact front end only (--frontend stock is SpeechBrain's path)")
    folder = check_output(output, options.overwrite)
    model = load_model(model_path, options.device)
    cells = grid.cells(model.geometry.frame_ms)
    unlimited = any(cell.left is None for cell in cells[1:])
    look_ahead = any(cell.right for cell in cells[1:])
    if backend == "onnx" and unlimited:
        raise ConfigError("--backend onnx needs finite left contexts (unlimited is not a fixed shape): "
                          "drop 'unlimited' from --left-chunks")
    if options.streaming and unlimited and look_ahead:
        raise ConfigError("look-ahead streams on the fixed-shape state, which needs a finite left context: drop "
                          "'unlimited' from the left contexts, or pass --masked-only")
    if frontend == "stock" and look_ahead:
        raise ConfigError("--frontend stock streams as SpeechBrain's StreamingASR does, which has no look-ahead")
    utterances = load_utterances(manifest, options.data_root, options.limit)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if options.jobs > 1:  # each worker process loads its own copy of the model and audio
        worker_args = (str(model_path), options.device, str(manifest), options.data_root, options.limit)
        if backend == "onnx" and options.streaming:  # export the cells once, before the workers look for them
            for cell in cells[1:]:
                cached_onnx_folder(model, with_right_frames(DynChunkTrainConfig(cell.chunk, cell.left), cell.right),
                                   int8, engine.onnx_cache)
        results = run_sweep_parallel(worker_args, cells, options.jobs, engine, options.streaming, options.progress)
    else:
        results = run_sweep(model, utterances, cells, engine, options.streaming, options.progress)
    meta = {
        "model": str(model_path),
        "manifest": str(manifest),
        "threads": engine.threads,
        "jobs": options.jobs,
        "frontend": frontend,
        "backend": backend + (" int8" if int8 else ""),
        "decoding": engine.decoding.label(),
        "seconds": round(time.time() - start, 1),
        "frame_ms": model.geometry.frame_ms,
        "lookahead_ms": model.geometry.lookahead_ms,
    }
    write_results(results, folder, meta)
    return results
