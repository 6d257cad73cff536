"""Evaluation: WER against chunk size and left context with latency and compute
(``grid``, ``cells``, ``passes``, ``sweep``, ``report``), and the dependency check behind
``streamasr check-streaming`` (``dependency``)."""

from streamasr.evaluate.cells import CellResult, Utterance, load_utterances
from streamasr.evaluate.grid import DEFAULT_CHUNK_MS, DEFAULT_LEFT_CHUNKS, Grid, grid_cells, parse_grid
from streamasr.evaluate.passes import evaluate_cell, masked_hypotheses, streaming_pass
from streamasr.evaluate.report import RESULT_FILES, markdown_table, plot_results, write_results
from streamasr.evaluate.sweep import SweepOptions, check_output, evaluate, run_sweep, run_sweep_parallel

__all__ = ["DEFAULT_CHUNK_MS", "DEFAULT_LEFT_CHUNKS", "RESULT_FILES", "CellResult", "Grid", "SweepOptions",
           "Utterance", "check_output", "evaluate", "evaluate_cell", "grid_cells", "load_utterances",
           "markdown_table", "masked_hypotheses", "parse_grid", "plot_results", "run_sweep", "run_sweep_parallel",
           "streaming_pass", "write_results"]
