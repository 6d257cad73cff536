"""The data commands: ``build-corpus``, ``prepare``, ``validate``. Each takes the parsed
arguments and returns the exit status."""

from __future__ import annotations

import argparse

from streamasr.data import corpora
from streamasr.data.manifest import validate_manifest
from streamasr.data.synthetic import NO_AUGMENTATION, SPLITS, Augmentation, CorpusConfig
from streamasr.data.synthetic import build_corpus as synthesise_corpus
from streamasr.errors import ConfigError


def build_corpus(args: argparse.Namespace) -> int:
    sizes = {f"{split}_utterances": getattr(args, f"{split}_utterances") for split in SPLITS}
    augmentation = NO_AUGMENTATION
    if args.augment:
        augmentation = Augmentation(noise_prob=args.noise_prob, reverb_prob=args.reverb_prob)
    config = CorpusConfig(
        **sizes,
        valid_speakers=args.valid_speakers,
        test_speakers=args.test_speakers,
        test_synthesizer=args.test_synthesizer,
        other_synthesizer_share=args.other_synthesizer_share,
        augmentation=augmentation,
        human=not args.no_human,
        human_test_share=args.human_test_share,
        human_train_speeds=tuple(args.human_train_speeds),
        seed=args.seed,
    )
    synthesise_corpus(args.data_folder, config, num_workers=args.workers)
    return 0


def prepare(args: argparse.Namespace) -> int:
    options = {"skip_bad": args.skip_bad, "jobs": args.jobs}
    if args.corpus == "librispeech":
        for name in ("train_splits", "valid_splits", "test_splits"):
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
    else:
        if args.language is None:
            raise ConfigError(f"{args.corpus} needs --language (en, fr or it)")
        options["language"] = args.language
    corpora.prepare(args.corpus, args.data_folder, args.manifest_folder, **options)
    return 0


def validate(args: argparse.Namespace) -> int:
    for manifest in args.manifest:
        summary = validate_manifest(manifest, data_root=args.data_root)
        print(f"{manifest}: {summary.utterances} utterances, {summary.hours:.2f} h, OK")
    return 0


__all__ = ["build_corpus", "prepare", "validate"]
