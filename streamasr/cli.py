"""The ``streamasr`` command: one entry point for the toolkit's tools.

Subcommands
-----------
build-corpus     synthesise the built-in espeak-ng corpus (train/valid/test manifests)
validate         check a manifest's audio and transcripts before training
evaluate         WER / latency / compute against chunk size and left context
check-streaming  prove (or refute) that no encoder output depends on a later chunk
"""

from __future__ import annotations

import argparse
import os
import sys


def _add_corpus_parser(subparsers) -> None:
    from streamasr.data.synthetic import CorpusConfig

    defaults = CorpusConfig()
    parser = subparsers.add_parser(
        "build-corpus",
        help="synthesise the built-in English corpus with espeak-ng",
        description="Synthesise English sentences with espeak-ng into train/valid/test "
        "manifests. Valid and test use voice+variant combinations never used in train. "
        "Re-running resumes: finished files are kept, missing ones are made.",
    )
    parser.add_argument("data_folder", help="output folder (wav files + manifests)")
    parser.add_argument("--train-utterances", type=int, default=defaults.train_utterances)
    parser.add_argument("--valid-utterances", type=int, default=defaults.valid_utterances)
    parser.add_argument("--test-utterances", type=int, default=defaults.test_utterances)
    parser.add_argument("--valid-speakers", type=int, default=defaults.valid_speakers)
    parser.add_argument("--test-speakers", type=int, default=defaults.test_speakers)
    parser.add_argument(
        "--vocabulary-size",
        type=int,
        default=defaults.vocabulary_size,
        help="closed vocabulary: the N most frequent English words (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.set_defaults(handler=_run_build_corpus)


def _run_build_corpus(args) -> int:
    from streamasr.data.synthetic import CorpusConfig, build_corpus

    for name in ("train_utterances", "valid_utterances", "test_utterances"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    config = CorpusConfig(
        train_utterances=args.train_utterances,
        valid_utterances=args.valid_utterances,
        test_utterances=args.test_utterances,
        valid_speakers=args.valid_speakers,
        test_speakers=args.test_speakers,
        vocabulary_size=args.vocabulary_size,
        seed=args.seed,
    )
    build_corpus(args.data_folder, config, num_workers=args.workers)
    return 0


def _add_validate_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "validate", help="check a manifest (audio files, sample rate, transcripts)"
    )
    parser.add_argument("manifest", nargs="+")
    parser.add_argument("--data-root", default=None, help="value of $data_root in the CSV")
    parser.set_defaults(handler=_run_validate)


def _run_validate(args) -> int:
    from streamasr.data.manifest import validate_manifest

    for manifest in args.manifest:
        summary = validate_manifest(manifest, data_root=args.data_root)
        print(f"{manifest}: {summary.utterances} utterances, {summary.hours:.2f} h, OK")
    return 0


def _add_evaluate_parser(subparsers) -> None:
    from streamasr.evaluate import DEFAULT_CHUNK_MS

    parser = subparsers.add_parser(
        "evaluate",
        help="WER, latency and compute against chunk size and left context",
        description="Sweep chunk sizes x left contexts (plus full context) on a test set: "
        "WER/CER by masked simulation and by true chunk-by-chunk streaming, the number of "
        "differing hypotheses, algorithmic latency, compute per chunk, RTF and token "
        "latencies. Writes results.json/.csv/.md and two PNG plots.",
    )
    parser.add_argument("model", help="train.py output folder")
    parser.add_argument("--manifest", required=True, help="test CSV (ID,duration,wav,spk_id,wrd)")
    parser.add_argument("--output", required=True, help="folder for the results")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--chunk-ms",
        default=",".join(str(v) for v in DEFAULT_CHUNK_MS),
        help="comma-separated chunk sizes in ms, multiples of 40 (default %(default)s)",
    )
    group.add_argument("--chunk-frames", default=None, help="comma-separated chunk sizes in encoder frames")
    parser.add_argument(
        "--left-chunks", default="2,4,unlimited", help="comma-separated left contexts in chunks, or 'unlimited'"
    )
    parser.add_argument("--data-root", default=None, help="value of $data_root (default: the manifest's folder)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per stream (default 1)")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1,
        help="grid cells evaluated in parallel processes (default: all cores, %(default)s)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the N shortest utterances")
    parser.add_argument("--masked-only", action="store_true", help="skip true streaming")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace results in --output")
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args) -> int:
    from streamasr.evaluate import evaluate, markdown_table

    if args.chunk_frames:
        values, unit = args.chunk_frames.split(","), "frames"
    else:
        values, unit = args.chunk_ms.split(","), "ms"
    results = evaluate(
        args.model,
        args.manifest,
        args.output,
        chunk_values=values,
        unit=unit,
        left_values=args.left_chunks.split(","),
        data_root=args.data_root,
        overwrite=args.overwrite,
        threads=args.threads,
        jobs=max(1, args.jobs),
        limit=args.limit,
        streaming=not args.masked_only,
        device=args.device,
    )
    print(markdown_table(results))
    print(f"results written to {args.output}")
    return 0


def _add_check_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check-streaming",
        help="plot the encoder's dependency matrix; fail if an output sees a later chunk",
    )
    parser.add_argument("model", help="experiment YAML (random weights) or train.py output folder")
    parser.add_argument("--chunk-frames", type=int, default=8)
    parser.add_argument("--left-chunks", default="2", help="chunks of left context, or 'unlimited'")
    parser.add_argument("--chunks", type=int, default=4, help="input length in chunks")
    parser.add_argument("--plot", default="dependency_matrix.png")
    parser.set_defaults(handler=_run_check)


def _run_check(args) -> int:
    from streamasr.check import check_encoder, encoder_from
    from streamasr.evaluate import parse_grid

    _, lefts = parse_grid(["1"], "frames", [args.left_chunks], 40.0)
    if args.chunk_frames < 1:
        raise ValueError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    report = check_encoder(encoder_from(args.model), args.chunk_frames, lefts[0], args.chunks, args.plot)
    print(report.describe())
    print(f"dependency matrix: {report.plot}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamasr", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_corpus_parser(subparsers)
    _add_validate_parser(subparsers)
    _add_evaluate_parser(subparsers)
    _add_check_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        print(f"streamasr {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
