"""The measuring commands: ``evaluate`` (the grid sweep, per test set and per pair of
fusion weights) and ``check-streaming``. Each takes the parsed arguments and returns
the exit status."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from streamasr.cli.common import checked_device, requested_decoding
from streamasr.engine import EngineSpec
from streamasr.errors import ConfigError
from streamasr.evaluate import Grid, SweepOptions, markdown_table
from streamasr.evaluate import evaluate as evaluate_grid
from streamasr.evaluate.dependency import check_encoder, encoder_from
from streamasr.evaluate.report import test_sets_table, weight_table
from streamasr.model import load_model


def evaluate(args: argparse.Namespace) -> int:
    if args.chunk_frames:
        values, unit = args.chunk_frames.split(","), "frames"
    else:
        values, unit = args.chunk_ms.split(","), "ms"
    grid = Grid(chunk_values=values, unit=unit, left_values=(args.left_ms or args.left_chunks).split(","),
                right_values=args.right_ms.split(","), left_unit="ms" if args.left_ms else "chunks")
    options = SweepOptions(data_root=args.data_root, limit=args.limit, streaming=not args.masked_only,
                           jobs=max(1, args.jobs), device=args.device, overwrite=args.overwrite)
    engine = EngineSpec(feature_path=args.frontend, backend=args.backend, int8=args.int8, threads=args.threads)
    model = load_model(args.model, checked_device(args.device))
    weights = _weight_grid(args)
    if len(weights) == 1:
        args.lm_weight, args.lodr_weight = weights[0]
        _evaluate_sets(args, args.output, grid, dataclasses.replace(engine, decoding=requested_decoding(args, model)),
                       options)
        return 0
    # a small grid of fusion weights (tune them on a valid set): one folder per pair
    rows = []
    for lm_weight, lodr_weight in weights:
        args.lm_weight, args.lodr_weight = lm_weight, lodr_weight
        folder = os.path.join(args.output, f"lm{lm_weight}_lodr{lodr_weight}")
        print(f"== LM weight {lm_weight}, LODR weight {lodr_weight}")
        results = _evaluate_sets(args, folder, grid,
                                 dataclasses.replace(engine, decoding=requested_decoding(args, model)), options)
        rows.append((lm_weight, lodr_weight, results))
    table = weight_table(rows)
    Path(args.output, "lm_weights.md").write_text(table + "\n", encoding="utf-8")
    print(f"== WER by fusion weight\n{table}\nresults written to {args.output}/lm*_lodr*/ and {args.output}/lm_weights.md")
    return 0


def _weight_grid(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(LM weight, LODR weight) pairs from comma-separated --lm-weight / --lodr-weight."""
    lm_weights = [v.strip() for v in str(args.lm_weight).split(",") if v.strip()] or ["0"]
    lodr_weights = [v.strip() for v in str(args.lodr_weight).split(",") if v.strip()] or ["0"]
    if (len(lm_weights) > 1 or len(lodr_weights) > 1) and not args.lm:
        raise ConfigError("a grid of --lm-weight / --lodr-weight values needs --lm")
    return [(a, b) for a in lm_weights for b in lodr_weights]


def _evaluate_sets(args: argparse.Namespace, output: str, grid: Grid, engine: EngineSpec,
                   options: SweepOptions) -> dict:
    """Evaluate every --manifest into ``output`` (one folder per test set when several);
    returns the results by test set (its file stem)."""
    if len(args.manifest) == 1:
        results = evaluate_grid(args.model, args.manifest[0], output, grid, engine, options)
        print(markdown_table(results))
        print(f"results written to {output}")
        return {Path(args.manifest[0]).stem: results}
    stems = [Path(manifest).stem for manifest in args.manifest]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"--manifest: two manifests share a file name ({', '.join(args.manifest)}); "
                          "each test set is written to OUTPUT/<file stem>/")
    by_set = {}
    for stem, manifest in zip(stems, args.manifest):
        print(f"== {stem} ({manifest})")
        by_set[stem] = evaluate_grid(args.model, manifest, os.path.join(output, stem), grid, engine, options)
        print(markdown_table(by_set[stem]))
    table = test_sets_table(by_set)
    Path(output, "test_sets.md").write_text(table + "\n", encoding="utf-8")
    print(f"== WER per test set\n{table}\nresults written to {output}/<test set>/ and {output}/test_sets.md")
    return by_set


def check(args: argparse.Namespace) -> int:
    report = check_encoder(encoder_from(args.model), args.chunk_frames, args.left_chunks, args.chunks, args.plot,
                           args.right_frames)
    print(report.describe())
    print(f"dependency matrix: {report.plot}")
    return 0 if report.ok else 1


__all__ = ["check", "evaluate"]
