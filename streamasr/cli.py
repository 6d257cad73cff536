"""The ``streamasr`` command: one entry point for the toolkit's tools.

Subcommands
-----------
build-corpus   synthesise the built-in espeak-ng corpus (train/valid/test manifests)
validate       check a manifest's audio and transcripts before training
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamasr", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_corpus_parser(subparsers)
    _add_validate_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"streamasr {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
