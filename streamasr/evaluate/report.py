"""Writing a sweep's results: ``results.json``, ``results.csv``, ``results.md`` (the
table: rows left context, columns chunk size) and two PNG plots."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Optional

from streamasr.evaluate.cells import CellResult

RESULT_FILES = ("results.json", "results.csv", "results.md", "wer_vs_chunk.png", "wer_vs_latency.png",
                "wer_vs_mean_latency.png")


def markdown_table(results: list[CellResult]) -> str:
    """Rows: left context (chunks, or ms) and look-ahead where there is one; columns:
    chunk size (ms); cells: streaming WER (masked WER when streaming was not run);
    full-context WER in its own column."""
    full = next((r for r in results if r.chunk_frames is None), None)
    chunked = [r for r in results if r.chunk_frames is not None]
    sizes = sorted({r.chunk_ms for r in chunked})
    lefts = _row_labels(chunked)
    header = "| left context (chunks), look-ahead | " + " | ".join(f"{s:g} ms" for s in sizes) + " | full context |"
    lines = [header, "|" + "---|" * (len(sizes) + 2)]
    for left in lefts:
        cells = []
        for size in sizes:
            match = [r for r in chunked if r.row_label == left and r.chunk_ms == size]
            if match:
                r = match[0]
                value = r.streaming_wer if r.streaming_wer is not None else r.masked_wer
                cells.append(f"{value:.2f}")
            else:
                cells.append("")
        full_cell = f"{full.masked_wer:.2f}" if full else ""
        lines.append(f"| {left} | " + " | ".join(cells) + f" | {full_cell} |")
    return "\n".join(lines)


def test_sets_table(results_by_set: dict[str, list[CellResult]]) -> str:
    """One row per test set, one column per grid cell (chunk / left context) and full
    context: streaming WER (masked where streaming was not run)."""
    def key(r: CellResult) -> tuple:  # full context last; chunks by size, then left context
        return r.chunk_frames is None, r.chunk_ms or 0.0, r.row_label

    columns = sorted({key(r) for results in results_by_set.values() for r in results})
    names = ["full context" if full else f"{ms:g} ms / {left}" for full, ms, left in columns]
    lines = ["| test set | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for name, results in results_by_set.items():
        by_key = {key(r): r for r in results}
        cells = []
        for column in columns:
            r = by_key.get(column)
            value = None if r is None else (r.streaming_wer if r.streaming_wer is not None else r.masked_wer)
            cells.append("" if value is None else f"{value:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(results: list[CellResult], folder: Path, meta: dict) -> None:
    rows = [dataclasses.asdict(r) | {"left_context": r.left_label} for r in results]
    (folder / "results.json").write_text(json.dumps({"meta": meta, "cells": rows}, indent=2) + "\n")
    with open(folder / "results.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    text = [
        "# WER (%) against chunk size and left context\n",
        f"Model: `{meta.get('model')}`; test set: `{meta.get('manifest')}` ({results[0].utterances} utterances); "
        f"greedy decoding; cells are true-streaming WER, full context is the whole-utterance WER.\n",
        markdown_table(results),
        "\n\n## Every cell\n",
        "| chunk ms | left | look-ahead ms | masked WER | streaming WER | differing hyps | algorithmic latency ms (worst / mean) | compute/chunk ms (median / p95) | RTF | first / final token latency ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.chunk_frames is None:
            text.append(f"| full | - | - | {r.masked_wer:.2f} | - | - | - | - | - | - |")
            continue
        stream = f"{r.streaming_wer:.2f}" if r.streaming_wer is not None else "-"
        latency = f"{r.algorithmic_latency_ms:.0f} / {r.mean_latency_ms:.0f}"
        timing = (
            f"{r.chunk_compute_ms_median:.1f} / {r.chunk_compute_ms_p95:.1f} | "
            f"{r.real_time_factor:.3f} | {_fmt(r.first_token_latency_ms)} / {_fmt(r.final_token_latency_ms)}"
            if r.streaming_wer is not None
            else "- | - | -"
        )
        differing = r.differing_hypotheses if r.differing_hypotheses is not None else "-"
        left = r.left_label + (f" ({r.left_chunks})" if r.left_ms is not None else "")
        text.append(f"| {r.chunk_ms:g} | {left} | {r.right_ms:g} | {r.masked_wer:.2f} | {stream} | {differing} | "
                    f"{latency} | {timing} |")
    text.append(f"\nCompute measured with {results[0].threads} thread(s) per stream.\n")
    (folder / "results.md").write_text("\n".join(text))
    plot_results(results, folder)


def _row_labels(chunked: list[CellResult]) -> list[str]:
    labels = []
    for r in chunked:
        if r.row_label not in labels:
            labels.append(r.row_label)
    return labels


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.0f}"


def plot_results(results: list[CellResult], folder: Path) -> None:
    import matplotlib  # optional heavy dependency: imported where used

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = next((r for r in results if r.chunk_frames is None), None)
    chunked = [r for r in results if r.chunk_frames is not None]
    rows = _row_labels(chunked)

    def wer(r):
        return r.streaming_wer if r.streaming_wer is not None else r.masked_wer

    for name, xkey, xlabel in (
        ("wer_vs_chunk.png", "chunk_ms", "chunk size (ms)"),
        ("wer_vs_latency.png", "algorithmic_latency_ms",
         "worst-case algorithmic latency (ms): chunk + look-ahead + front end"),
        ("wer_vs_mean_latency.png", "mean_latency_ms",
         "mean algorithmic latency (ms): half a chunk + look-ahead + front end"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for row in rows:
            cells = sorted((r for r in chunked if r.row_label == row), key=lambda r: r.chunk_ms)
            xs = [getattr(r, xkey) if getattr(r, xkey) is not None else r.chunk_ms for r in cells]
            ax.plot(xs, [wer(r) for r in cells], marker="o", label=f"left context {row}")
        if full is not None:
            ax.axhline(full.masked_wer, linestyle="--", color="black", label="full context")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("WER (%)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / name, dpi=120)
        plt.close(fig)


def weight_table(rows: list) -> str:
    """``evaluate``'s grid of fusion weights as Markdown: one row per (LM weight, LODR
    weight, {test set: cell results}), the WER of each test set's last grid cell
    (streaming where it ran, else the masked simulation)."""
    sets = list(rows[0][2])
    lines = ["| LM weight | LODR weight | " + " | ".join(sets) + " |", "|" + "---|" * (len(sets) + 2)]
    for lm_weight, lodr_weight, results in rows:
        cells = []
        for name in sets:
            cell = results[name][-1]  # the grid's last chunked cell (or full context)
            value = cell.streaming_wer if cell.streaming_wer is not None else cell.masked_wer
            cells.append(f"{value:.2f}")
        lines.append(f"| {lm_weight} | {lodr_weight} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
