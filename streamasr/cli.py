"""The ``streamasr`` command: one entry point for the toolkit's tools.

Subcommands
-----------
build-corpus     synthesise the built-in corpus (espeak-ng, flite, festival; train/valid/3 test sets)
prepare          LibriSpeech / CommonVoice / VoxPopuli (official layouts) -> manifests
validate         check a manifest's audio and transcripts before training
evaluate         WER / latency / compute against chunk size and left context
check-streaming  prove (or refute) that no encoder output depends on a later chunk
export           package a trained model for SpeechBrain's StreamingASR / the HF hub
export-onnx      ONNX encoder / decoder / joiner of one chunk config, for onnxruntime or sherpa-onnx
check-sherpa     decode a test set with sherpa-onnx (Python API, C++ server) and compare with ours
serve            WebSocket server: many live streams batched across connections (sherpa-onnx protocol)
transcribe       live chunk-by-chunk transcription of a file, stdin, a URL or a microphone

This module only parses arguments and calls the library. Errors: only
``StreamAsrError`` (bad input, described in words) becomes a one-line message with exit
status 2; anything else keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from streamasr.cpu import flush_denormals
from streamasr.data import corpora
from streamasr.data.manifest import validate_manifest
from streamasr.data.synthetic import NO_AUGMENTATION, SPLITS, Augmentation, CorpusConfig, build_corpus
from streamasr.dct import right_frames, with_right_frames
from streamasr.decoding import DECODINGS, Decoding, load_lm, read_hotwords, train_ngram
from streamasr.errors import ConfigError, StreamAsrError
from streamasr.evaluate import evaluate, markdown_table
from streamasr.evaluate.dependency import check_encoder, encoder_from
from streamasr.evaluate.report import test_sets_table
from streamasr.export import export, push_to_hub
from streamasr.export.onnx import export_onnx
from streamasr.export.sherpa import export_sherpa_onnx, write_sherpa_readme
from streamasr.frontend import FEATURE_PATHS
from streamasr.live import open_source, transcribe_source
from streamasr.model import load_model
from streamasr.streaming.backends import BACKENDS
from streamasr.streaming.endpoint import Endpointing
from streamasr.streaming.onnx import OnnxModel, load_any_model
from streamasr.units import DEFAULT_CHUNK_MS, SAMPLE_RATE, parse_left_context


def _add_corpus_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = CorpusConfig()
    aug = Augmentation()
    parser = subparsers.add_parser(
        "build-corpus",
        help="synthesise the built-in English corpus (espeak-ng, flite, festival)",
        description="Synthesise open-vocabulary English text (WordNet examples, fortunes, "
        "a trigram chain, number/date/name templates) with espeak-ng, flite and festival into "
        "train / valid / test_voices / test_text / test_synth manifests. test_voices: held-out "
        "espeak-ng voices; test_text: held-out text sources (chatterbot-corpus conversation, "
        "The Devil's Dictionary) by the same voices; test_synth: a synthesiser never heard in "
        "training. --augment adds speed, noise and reverberation to the training audio. Re-running "
        "resumes: finished files are kept, missing ones are made.",
    )
    parser.add_argument("data_folder", help="output folder (wav files + manifests)")
    for split in SPLITS:
        parser.add_argument(f"--{split.replace('_', '-')}-utterances", type=int,
                            default=getattr(defaults, f"{split}_utterances"), metavar="N")
    parser.add_argument("--valid-speakers", type=int, default=defaults.valid_speakers)
    parser.add_argument("--test-speakers", type=int, default=defaults.test_speakers)
    parser.add_argument("--test-synthesizer", choices=("festival", "flite"), default=defaults.test_synthesizer,
                        help="the synthesiser held out for test_synth (default %(default)s)")
    parser.add_argument("--other-synthesizer-share", type=float, default=defaults.other_synthesizer_share,
                        help="share of train utterances spoken by flite/festival (default %(default)s)")
    parser.add_argument("--augment", action="store_true",
                        help="augment the training audio: speed 0.9/1.0/1.1, generated room impulse responses, "
                        "coloured noise at 10-30 dB SNR (off by default: within the demo's 45-minute CPU budget "
                        "it cost more in-domain accuracy than it gained on the unheard synthesiser)")
    parser.add_argument("--noise-prob", type=float, default=aug.noise_prob, help="with --augment (default %(default)s)")
    parser.add_argument("--reverb-prob", type=float, default=aug.reverb_prob,
                        help="with --augment (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    parser.set_defaults(handler=_run_build_corpus)


def _run_build_corpus(args: argparse.Namespace) -> int:
    sizes = {f"{split}_utterances": getattr(args, f"{split}_utterances") for split in SPLITS}
    for name, value in sizes.items():
        if value < (1 if name in ("train_utterances", "valid_utterances") else 0):
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("noise_prob", "reverb_prob", "other_synthesizer_share"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise SystemExit(f"--{name.replace('_', '-')} must be within 0..1, got {getattr(args, name)}")
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
        seed=args.seed,
    )
    build_corpus(args.data_folder, config, num_workers=args.workers)
    return 0


def _add_prepare_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="write manifests for LibriSpeech, CommonVoice or VoxPopuli",
        description="Read a corpus in its official layout, check every audio file and "
        "transcript, and write SpeechBrain CSV manifests (train.csv, valid.csv, test "
        "manifests) with durations. Bad items are listed with their paths and stop the "
        "run unless --skip-bad is given (then they go to skipped_<split>.tsv). A second "
        "run with unchanged inputs reuses the manifests.",
    )
    parser.add_argument("corpus", choices=("librispeech", "commonvoice", "voxpopuli"))
    parser.add_argument("data_folder", help="corpus root (LibriSpeech/, cv-corpus-*/<lang>/, "
                        "the VoxPopuli root holding transcribed_data/)")
    parser.add_argument("manifest_folder", help="where the manifests go")
    parser.add_argument("--language", default=None, help="commonvoice/voxpopuli: en, fr or it")
    parser.add_argument("--train-splits", nargs="*", default=None,
                        help="librispeech (default: the three training splits)")
    parser.add_argument("--valid-splits", nargs="*", default=None,
                        help="librispeech (default: dev-clean)")
    parser.add_argument("--test-splits", nargs="*", default=None,
                        help="librispeech (default: test-clean test-other)")
    parser.add_argument("--skip-bad", "--skip_bad", dest="skip_bad", action="store_true",
                        help="leave bad items out (listed in skipped_<split>.tsv) instead of stopping")
    parser.add_argument("--jobs", type=int, default=None, help="audio reader processes (default: all cores)")
    parser.set_defaults(handler=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    options = {"skip_bad": args.skip_bad, "jobs": args.jobs}
    if args.corpus == "librispeech":
        for name in ("train_splits", "valid_splits", "test_splits"):
            if getattr(args, name) is not None:
                options[name] = getattr(args, name)
    else:
        if args.language is None:
            raise SystemExit(f"streamasr prepare {args.corpus}: --language is required (en, fr or it)")
        options["language"] = args.language
    corpora.prepare(args.corpus, args.data_folder, args.manifest_folder, **options)
    return 0


def _add_validate_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate", help="check a manifest (audio files, sample rate, transcripts)"
    )
    parser.add_argument("manifest", nargs="+")
    parser.add_argument("--data-root", default=None, help="value of $data_root in the CSV")
    parser.set_defaults(handler=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    for manifest in args.manifest:
        summary = validate_manifest(manifest, data_root=args.data_root)
        print(f"{manifest}: {summary.utterances} utterances, {summary.hours:.2f} h, OK")
    return 0


def _add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="WER, latency and compute against chunk size and left context",
        description="Sweep chunk sizes x left contexts (plus full context) on a test set: "
        "WER/CER by masked simulation and by true chunk-by-chunk streaming, the number of "
        "differing hypotheses, algorithmic latency, compute per chunk, RTF and token "
        "latencies. Writes results.json/.csv/.md and two PNG plots.",
    )
    parser.add_argument("model", help="train.py output folder")
    parser.add_argument("--manifest", required=True, nargs="+",
                        help="test CSV(s) (ID,duration,wav,spk_id,wrd); with several (the built-in corpus's "
                        "test_voices.csv test_text.csv test_synth.csv), each is evaluated into "
                        "OUTPUT/<file stem>/ and OUTPUT/test_sets.md compares them")
    parser.add_argument("--output", required=True, help="folder for the results")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--chunk-ms",
        default=",".join(str(v) for v in DEFAULT_CHUNK_MS),
        help="comma-separated chunk sizes in ms, multiples of 40 (default %(default)s)",
    )
    group.add_argument("--chunk-frames", default=None, help="comma-separated chunk sizes in encoder frames")
    left = parser.add_mutually_exclusive_group()
    left.add_argument(
        "--left-chunks", default="2,4,unlimited", help="comma-separated left contexts in chunks, or 'unlimited'"
    )
    left.add_argument("--left-ms", default=None,
                      help="comma-separated left contexts in ms (or 'unlimited'), the same past for every chunk "
                      "size: each becomes whole chunks, rounded up (for grids that mix chunk sizes, e.g. with "
                      "--right-ms; 1-frame chunks need it)")
    parser.add_argument("--right-ms", default="0",
                        help="comma-separated look-ahead (right context) in ms, multiples of 40 (default 0); a "
                        "model trained with look-ahead (hparams/lookahead.yaml) uses it")
    parser.add_argument("--data-root", default=None, help="value of $data_root (default: the manifest's folder)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per stream (default 1)")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1,
        help="grid cells evaluated in parallel processes (default: all cores, %(default)s)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the N shortest utterances")
    parser.add_argument("--masked-only", action="store_true", help="skip true streaming")
    parser.add_argument("--frontend", choices=FEATURE_PATHS, default="exact",
                        help="true-streaming features: exact (ours, default) or stock "
                        "(SpeechBrain StreamingASR's StreamingFeatureWrapper path)")
    _add_backend_options(parser)
    _add_decoding_options(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace results in --output")
    parser.set_defaults(handler=_run_evaluate)


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="torch (default) or onnx: onnxruntime on the cells exported into <model>/onnx/ "
                        "(exported when missing or made from other weights; finite left context only)")
    parser.add_argument("--int8", action="store_true", help="with --backend onnx: int8-quantised MatMul weights")


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decoding", choices=DECODINGS, default="greedy",
                        help="greedy (default) or beam: batched modified beam search (one symbol per frame; partial "
                        "results are the common prefix of the hypotheses, the final the best)")
    parser.add_argument("--beam", type=int, default=4, help="hypotheses per stream with --decoding beam (default 4)")
    parser.add_argument("--lm", default=None,
                        help="with --decoding beam: a token n-gram LM (ARPA over the model's pieces, `streamasr "
                        "train-lm` writes one) fused at --lm-weight")
    parser.add_argument("--lm-weight", default="0.3",
                        help="shallow-fusion weight of --lm (default %(default)s; evaluate: comma-separated values "
                        "make a grid, one folder each, compared in OUTPUT/lm_weights.md)")
    parser.add_argument("--lodr", default=None, help="with --lm: a low-order LM (e.g. a bigram) subtracted at "
                        "--lodr-weight (LODR)")
    parser.add_argument("--lodr-weight", default="0.0",
                        help="weight of --lodr (default %(default)s; evaluate: a comma-separated grid as --lm-weight)")
    parser.add_argument("--hotwords", default=None,
                        help="with --decoding beam: a file of phrases to favour, one per line, optionally ending "
                        "in ' :SCORE' (bonus per token; default --hotwords-score)")
    parser.add_argument("--hotwords-score", default="1.5", help="bonus per matched hotword token (default %(default)s)")


def _decoding(args: argparse.Namespace, model) -> Decoding:
    """The search the command line asks for, LMs loaded and checked before any work."""
    weights = {}
    for name in ("lm_weight", "lodr_weight", "hotwords_score"):
        try:
            weights[name] = float(getattr(args, name))
        except ValueError:
            raise ConfigError(f"--{name.replace('_', '-')} must be a number, got {getattr(args, name)!r}") from None
    spec = Decoding(args.decoding, args.beam, getattr(args, "nbest", 1), lm_weight=weights["lm_weight"],
                    lodr_weight=weights["lodr_weight"])
    if args.lodr and not args.lm:
        raise ConfigError("--lodr needs --lm (LODR subtracts a low-order LM from the fused one)")
    if args.lm:
        if args.decoding != "beam":
            raise ConfigError("--lm is fused in beam search only: add --decoding beam")
        spec.lm = load_lm(args.lm, model.tokenizer, model.blank_id)
        spec.lodr = load_lm(args.lodr, model.tokenizer, model.blank_id) if args.lodr else None
    if args.hotwords:
        if args.decoding != "beam":
            raise ConfigError("--hotwords are applied in beam search only: add --decoding beam")
        spec.hotwords = read_hotwords(args.hotwords, model.tokenizer, weights["hotwords_score"], model.blank_id)
    return spec.check()


def _run_evaluate(args: argparse.Namespace) -> int:
    if args.chunk_frames:
        values, unit = args.chunk_frames.split(","), "frames"
    else:
        values, unit = args.chunk_ms.split(","), "ms"
    options = dict(
        chunk_values=values,
        unit=unit,
        left_values=(args.left_ms or args.left_chunks).split(","),
        left_unit="ms" if args.left_ms else "chunks",
        right_values=args.right_ms.split(","),
        data_root=args.data_root,
        overwrite=args.overwrite,
        threads=args.threads,
        jobs=max(1, args.jobs),
        limit=args.limit,
        streaming=not args.masked_only,
        device=args.device,
        frontend=args.frontend,
        backend=args.backend,
        int8=args.int8,
    )
    model = load_model(args.model, args.device)
    grid = _weight_grid(args)
    if len(grid) == 1:
        args.lm_weight, args.lodr_weight = grid[0]
        _evaluate_sets(args, args.output, dict(options, decoding=_decoding(args, model)))
        return 0
    # a small grid of fusion weights (tune them on a valid set): one folder per pair
    rows = []
    for lm_weight, lodr_weight in grid:
        args.lm_weight, args.lodr_weight = lm_weight, lodr_weight
        folder = os.path.join(args.output, f"lm{lm_weight}_lodr{lodr_weight}")
        print(f"== LM weight {lm_weight}, LODR weight {lodr_weight}")
        results = _evaluate_sets(args, folder, dict(options, decoding=_decoding(args, model)))
        rows.append((lm_weight, lodr_weight, results))
    table = _weight_table(rows)
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


def _weight_table(rows: list) -> str:
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


def _evaluate_sets(args: argparse.Namespace, output: str, options: dict) -> dict:
    """Evaluate every --manifest into ``output`` (one folder per test set when several);
    returns the results by test set (its file stem)."""
    if len(args.manifest) == 1:
        results = evaluate(args.model, args.manifest[0], output, **options)
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
        by_set[stem] = evaluate(args.model, manifest, os.path.join(output, stem), **options)
        print(markdown_table(by_set[stem]))
    table = test_sets_table(by_set)
    Path(output, "test_sets.md").write_text(table + "\n", encoding="utf-8")
    print(f"== WER per test set\n{table}\nresults written to {output}/<test set>/ and {output}/test_sets.md")
    return by_set


def _add_check_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-streaming",
        help="plot the encoder's dependency matrix; fail if an output sees a later chunk",
    )
    parser.add_argument("model", help="experiment YAML (random weights) or train.py output folder")
    parser.add_argument("--chunk-frames", type=int, default=8)
    parser.add_argument("--left-chunks", default="2", help="chunks of left context, or 'unlimited'")
    parser.add_argument("--right-frames", type=int, default=0,
                        help="look-ahead frames each chunk may see (streamasr.dct; default 0): fails if any output "
                        "depends on input past its chunk's end + this")
    parser.add_argument("--chunks", type=int, default=4, help="input length in chunks")
    parser.add_argument("--plot", default="dependency_matrix.png")
    parser.set_defaults(handler=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    left = parse_left_context(args.left_chunks)
    if args.chunk_frames < 1:
        raise ConfigError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    if args.right_frames < 0:
        raise ConfigError(f"--right-frames must be >= 0, got {args.right_frames}")
    report = check_encoder(encoder_from(args.model), args.chunk_frames, left, args.chunks, args.plot,
                           args.right_frames)
    print(report.describe())
    print(f"dependency matrix: {report.plot}")
    return 0 if report.ok else 1


def _add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a model folder that stock SpeechBrain StreamingASR loads (and push it to the hub)",
        description="Write hyperparams.yaml (generated from the training YAML), model.ckpt "
        "(best checkpoint by valid WER, or the average of the N best), normalizer.ckpt, "
        "tokenizer.ckpt, a model card README.md and an example audio file.",
    )
    parser.add_argument("training_folder", help="train.py output folder")
    parser.add_argument("model_folder", help="folder to create")
    parser.add_argument("--average", type=int, default=None,
                        help="average the N best checkpoints by valid WER (default: the run's "
                        "average_n_best, i.e. the weights its test used; 1 if unset)")
    parser.add_argument("--example", default=None,
                        help="example audio file (default: first utterance of the run's test manifest)")
    parser.add_argument("--results", default=None,
                        help="`streamasr evaluate` output folder for the model card "
                        "(default: <training_folder>/streaming_eval when present)")
    parser.add_argument("--language", default="en")
    parser.add_argument("--license", default="apache-2.0")
    parser.add_argument("--dataset", default="streamasr-synthetic", help="dataset name for the model card")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model folder")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", default=None,
                        help="upload the folder to this Hugging Face model repo (token: HF_TOKEN or cached login)")
    parser.add_argument("--private", action="store_true", help="create the hub repo as private")
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    folder = export(
        args.training_folder, args.model_folder, average=args.average, example_audio=args.example,
        results=args.results, overwrite=args.overwrite, language=args.language,
        license=args.license, dataset=args.dataset,
    )
    print(f"wrote {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
    if args.push_to_hub:
        url = push_to_hub(folder, args.push_to_hub, private=args.private)
        print(f"uploaded to {url}")
    return 0


def _add_transcribe_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe audio chunk by chunk as it arrives (file, stdin PCM, URL, microphone)",
        description="Stream audio through the recogniser chunk by chunk and print text as it "
        "is decoded. SOURCE: an audio file (wav/flac/ogg/mp3; other formats via ffmpeg), '-' "
        "for raw 16-bit PCM on stdin, a URL ffmpeg can open, or 'mic' / 'mic:<device>' "
        "(needs sounddevice). Other sample rates are resampled and stereo downmixed.",
    )
    parser.add_argument("source")
    parser.add_argument("--model", required=True,
                        help="train.py output folder, `streamasr export` folder or `streamasr export-onnx` folder")
    parser.add_argument("--chunk-ms", type=float, default=None,
                        help="chunk size, a multiple of 40 (default 640; an ONNX folder's own)")
    parser.add_argument("--left-chunks", default=None,
                        help="left context in chunks, or 'unlimited' (default 4; an ONNX folder's own)")
    parser.add_argument("--right-ms", type=float, default=None,
                        help="look-ahead per chunk in ms, a multiple of 40 (default 0; an ONNX folder's own): a "
                        "chunk waits for this much more audio (model trained with hparams/lookahead.yaml)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON event per line: partial (per chunk, with tokens) and final")
    _add_decoding_options(parser)
    parser.add_argument("--nbest", type=int, default=1,
                        help="with --decoding beam: the N best transcripts with their log-probabilities in the final "
                        "JSON event (default 1)")
    parser.add_argument("--frontend", choices=FEATURE_PATHS, default="exact",
                        help="exact (default): features equal to training; stock: as SpeechBrain's StreamingASR")
    parser.add_argument("--rate", type=int, default=SAMPLE_RATE, help="sample rate of PCM on stdin (default %(default)s)")
    parser.add_argument("--channels", type=int, default=1, help="channels of PCM on stdin (default %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--endpoint", action="store_true",
                        help="split the stream into segments at endpoints (sherpa-onnx's rules: 2.4 s of silence, "
                        "1.2 s of silence after speech, 20 s segments); one line per segment")
    _add_backend_options(parser)
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(handler=_run_transcribe)


def _run_transcribe(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_any_model(args.model, device=args.device)
    backend, int8, chunk_ms, left, right_ms = args.backend, args.int8, args.chunk_ms or 640, "4", 0.0
    if isinstance(model, OnnxModel):  # it runs its own cell, on onnxruntime
        backend, int8 = "onnx", model.onnx.meta["int8"]
        chunk_ms, left = model.onnx.meta["chunk_ms"], model.config.left_context_size
        right_ms = model.onnx.meta.get("right_ms", 0.0)
    left = parse_left_context(args.left_chunks if args.left_chunks is not None else left)
    chunk_ms = args.chunk_ms or chunk_ms
    right_ms = args.right_ms if args.right_ms is not None else right_ms
    model.geometry.frames_from_ms(chunk_ms)  # bad chunk sizes fail before reading audio
    model.geometry.right_frames_from_ms(right_ms)
    decoding = _decoding(args, model)
    source = open_source(args.source, pcm_rate=args.rate, pcm_channels=args.channels)
    endpointing = Endpointing() if args.endpoint else None
    for event in transcribe_source(model, source, chunk_ms, left, frontend=args.frontend,
                                   backend=backend, int8=int8, endpointing=endpointing, right_ms=right_ms,
                                   decoding=decoding, nbest=args.nbest):
        if args.json:
            print(event.to_json(), flush=True)
        elif event.kind == "partial" and event.text:
            print(event.text, end="", flush=True)
        elif event.kind in ("segment", "final"):
            print(flush=True)
    return 0


def _add_export_onnx_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export encoder.onnx / decoder.onnx / joiner.onnx for one chunk size and left context",
        description="Write encoder.onnx (Fbank window in; normaliser, CNN and the cache-aware encoder with "
        "fixed-shape caches inside), decoder.onnx (one prediction-network step), joiner.onnx, tokens.txt "
        "(blank last) and export.json (chunk and shift in feature frames, left context, front end, cache "
        "shapes, vocabulary), then check them against PyTorch over 5 chunks of a random batch.",
    )
    parser.add_argument("model", help="train.py output folder or `streamasr export` folder")
    parser.add_argument("output", help="folder to create")
    parser.add_argument("--chunk-ms", type=float, default=640, help="chunk size, a multiple of 40 (default %(default)s)")
    parser.add_argument("--left-chunks", default="4", help="left context in chunks (default %(default)s; not unlimited)")
    parser.add_argument("--right-ms", type=float, default=0,
                        help="look-ahead per chunk in ms, a multiple of 40 (default 0): the encoder's window grows by "
                        "it, its shift stays the chunk (a model trained with hparams/lookahead.yaml)")
    parser.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of the MatMul weights")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the ONNX-vs-PyTorch check (on by default: --verify)")
    parser.add_argument("--verify", dest="verify", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.add_argument("--target", choices=("streamasr", "sherpa-onnx"), default="streamasr",
                        help="streamasr (default): for `--backend onnx` / `transcribe --model FOLDER`; sherpa-onnx: "
                        "its streaming NeMo-transducer contract (window and shift in its framing, the CNN's feature "
                        "history in the cache, tokens.txt with <blk> last), for sherpa-onnx's recognizer and servers")
    parser.add_argument("--force", action="store_true",
                        help="with --target sherpa-onnx: export a model trained on another front end than "
                        "kaldi-native-fbank's (a warning is printed; sherpa-onnx will feed it other features)")
    parser.set_defaults(handler=_run_export_onnx, verify=True)


def _run_export_onnx(args: argparse.Namespace) -> int:
    left = parse_left_context(args.left_chunks)
    if left is None:
        raise ConfigError("export-onnx needs a finite --left-chunks (unlimited left context keeps every past "
                          "frame: the caches would have no fixed shape)")
    model = load_model(args.model)
    model.geometry.frames_from_ms(args.chunk_ms)  # a chunk size off the grid fails before the export
    model.geometry.right_frames_from_ms(args.right_ms)
    if args.force and args.target != "sherpa-onnx":
        raise ConfigError("--force applies to --target sherpa-onnx only")
    if args.target == "sherpa-onnx":
        result = export_sherpa_onnx(model, args.output, args.chunk_ms, left, int8=args.int8, force=args.force,
                                    verify=args.verify, overwrite=args.overwrite, right_ms=args.right_ms)
        write_sherpa_readme(result)
        print(f"wrote {result.folder}: " + ", ".join(sorted(p.name for p in result.folder.iterdir())))
        checked = result.meta.get("verified_max_difference")
        if checked:
            print("ONNX vs PyTorch, largest difference over 5 chunks: "
                  + ", ".join(f"{name} {value:.1e}" for name, value in checked.items()))
        print(f"run it: see {result.folder / 'README.md'}")
        return 0
    result = export_onnx(model, args.output, args.chunk_ms, left, int8=args.int8, verify=args.verify,
                         right_ms=args.right_ms,
                         overwrite=args.overwrite)
    checked = result.meta.get("verified_max_difference")
    print(f"wrote {result.folder}: " + ", ".join(sorted(p.name for p in result.folder.iterdir())))
    if checked:
        print("ONNX vs PyTorch, largest difference over 5 chunks: "
              + ", ".join(f"{name} {value:.1e}" for name, value in checked.items()))
    return 0


def _add_check_sherpa_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-sherpa",
        help="decode a test set with sherpa-onnx (Python API and C++ server) and compare with our engine",
        description="Export the model for sherpa-onnx (cached in <model>/sherpa-onnx/<cell>), decode the manifest "
        "with sherpa-onnx's OnlineRecognizer (0.8 s tail padding, as its server) and with our engine (exact front "
        "end, sherpa-onnx's 10 symbols per frame), and report both WERs, the share of identical transcripts and "
        "why the others differ. --server also runs sherpa-onnx's C++ WebSocket server on the same folder and "
        "checks its transcripts against the Python API's; --load-streams adds a loopback load test.",
    )
    parser.add_argument("model", help="train.py output folder or `streamasr export` folder")
    parser.add_argument("--manifest", required=True, help="test manifest (CSV)")
    parser.add_argument("--chunk-ms", default="640", help="comma-separated chunk sizes (default %(default)s)")
    parser.add_argument("--left-chunks", type=int, default=4, help="left context in chunks (default %(default)s)")
    parser.add_argument("--right-ms", type=float, default=0,
                        help="look-ahead per chunk in ms (default 0; a model trained with hparams/lookahead.yaml)")
    parser.add_argument("--limit", type=int, default=None, help="first N utterances only")
    parser.add_argument("--server", action="store_true", help="also run sherpa-onnx's C++ WebSocket server")
    parser.add_argument("--load-streams", default="", help="comma-separated concurrent real-time streams for a "
                        "loopback load test of the C++ server (first chunk size)")
    parser.add_argument("--load-seconds", type=float, default=20.0, help="audio per load-test stream (default 20)")
    parser.add_argument("--max-latency", type=float, default=1.5,
                        help="a load level keeps up when the p95 final-result latency stays below this (seconds)")
    parser.add_argument("--work-threads", type=int, default=2, help="the server's --num-work-threads (default 2)")
    parser.add_argument("--force", action="store_true", help="export a model trained on another front end anyway")
    parser.add_argument("--output", default=None, help="folder for sherpa_check.md / .json")
    parser.set_defaults(handler=_run_check_sherpa)


def _run_check_sherpa(args: argparse.Namespace) -> int:
    import json

    from streamasr.export import sherpa_check

    model = load_model(args.model)
    chunks = [float(value) for value in args.chunk_ms.split(",") if value.strip()]
    for chunk_ms in chunks:
        model.geometry.frames_from_ms(chunk_ms)
    model.geometry.right_frames_from_ms(args.right_ms)
    utterances = sherpa_check.load_manifest(args.manifest, args.limit)
    results = []
    for chunk_ms in chunks:
        result = sherpa_check.compare_with_sherpa(model, utterances, chunk_ms, args.left_chunks, force=args.force,
                                                  right_ms=args.right_ms)
        if args.server:
            result["server"] = sherpa_check.check_server(result["folder"], [u.wave.numpy() for u in utterances],
                                                         [row["sherpa"] for row in result["rows"]])
        results.append(result)
    text = sherpa_check.comparison_table(results)
    loads = []
    if args.load_streams:
        folder = results[0]["folder"]
        waves = [u.wave.numpy() for u in utterances]
        with sherpa_check.sherpa_server(folder, work_threads=args.work_threads, max_batch=64) as port:
            for streams in [int(value) for value in args.load_streams.split(",") if value.strip()]:
                loads.append(sherpa_check.load_test(port, waves, streams, args.load_seconds))
                print(f"{streams} streams: p95 final latency {loads[-1]['final_latency_p95']:.2f} s", flush=True)
        text += "\n" + sherpa_check.load_table(loads, chunks[0], args.max_latency)
    print(text, end="")
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "sherpa_check.md").write_text(text, encoding="utf-8")
        (out / "sherpa_check.json").write_text(json.dumps({"comparisons": results, "load": loads}, indent=1) + "\n",
                                               encoding="utf-8")
    return 0


def _add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    from streamasr.serve import ServeConfig

    defaults = ServeConfig()
    parser = subparsers.add_parser(
        "serve",
        help="WebSocket server: live streams from many connections decoded in shared batches",
        description="Serve a model over WebSocket with sherpa-onnx's streaming protocol (float32 16 kHz binary "
        "messages, 'Done'; JSON results, 'Done!'), so its clients work unchanged; an optional first message "
        "{\"sample_rate\": R, \"format\": \"int16\"|\"float32\"} for other rates (resampled) or int16. The ready "
        "chunks of all connections run in shared batches on the fixed-shape state (--workers model threads). /healthz and "
        "/metrics (Prometheus) over HTTP. SIGTERM drains and finishes open streams.",
    )
    parser.add_argument("--model", required=True, help="training, exported or ONNX model folder")
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--int8", action="store_true", help="with --backend onnx: int8 MatMul weights")
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--port", type=int, default=defaults.port)
    parser.add_argument("--chunk-ms", type=float, default=None, help="chunk size (default 640, or the ONNX folder's)")
    parser.add_argument("--left-chunks", default=None, help="left context in chunks (default 4, or the ONNX folder's)")
    parser.add_argument("--right-ms", type=float, default=None,
                        help="look-ahead per chunk in ms, a multiple of 40 (default 0; an ONNX folder's own): a "
                        "chunk waits for this much more audio (model trained with hparams/lookahead.yaml)")
    _add_decoding_options(parser)
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch, help="streams per model call")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help=f"model threads, each running its own batches (default {defaults.workers}: one per core "
                        "on a 2-core machine; see --threads)")
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections,
                        help="open streams at most; more are refused with HTTP 503")
    parser.add_argument("--max-buffer-seconds", type=float, default=defaults.max_buffer_seconds,
                        help="undecoded audio per stream before the server stops reading it")
    parser.add_argument("--buffer-deadline", type=float, default=defaults.buffer_deadline,
                        help="seconds a full buffer may last before the stream is closed")
    parser.add_argument("--max-message-bytes", type=int, default=defaults.max_message_bytes)
    parser.add_argument("--idle-timeout", type=float, default=defaults.idle_timeout,
                        help="seconds without a message before a stream is closed")
    parser.add_argument("--drain-seconds", type=float, default=defaults.drain_seconds,
                        help="on SIGTERM, seconds open streams get to send 'Done'")
    parser.add_argument("--certfile", default=None, help="TLS certificate (wss://; browsers need TLS off localhost)")
    parser.add_argument("--keyfile", default=None)
    parser.add_argument("--endpoint", action="store_true",
                        help="segment streams at endpoints (sherpa-onnx's rules): each segment's final has "
                        "is_final, the next segment starts afresh")
    parser.add_argument("--reuse-port", action="store_true",
                        help="SO_REUSEPORT: start several `streamasr serve` processes on one port to use more cores "
                        "(the kernel spreads connections over them)")
    parser.add_argument("--record-dir", default=None,
                        help="debug: write each stream's audio, as the recogniser got it (16 kHz), to this folder")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for the model in all (default: the machine's cores); each of the --workers "
                        "model threads computes with threads / workers of them (torch and onnxruntime)")
    parser.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

    from streamasr.serve import ServeConfig, serve_forever
    from streamasr.streaming import StreamingRecognizer
    from streamasr.streaming.backends import make_backend

    config = ServeConfig(host=args.host, port=args.port, max_batch=args.max_batch, workers=args.workers,
                         max_connections=args.max_connections, max_message_bytes=args.max_message_bytes,
                         max_buffer_seconds=args.max_buffer_seconds, buffer_deadline=args.buffer_deadline,
                         idle_timeout=args.idle_timeout, drain_seconds=args.drain_seconds,
                         certfile=args.certfile, keyfile=args.keyfile, record_dir=args.record_dir,
                         reuse_port=args.reuse_port)
    config.check()
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    per_worker = max(1, (args.threads or os.cpu_count() or 1) // config.workers)
    torch.set_num_threads(per_worker)  # per model thread: each runs its own intra-op team
    model = load_any_model(args.model, threads=per_worker)
    backend = args.backend
    if isinstance(model, OnnxModel):
        dct = model.config
        backend = "onnx"
    else:
        chunk_frames = model.geometry.frames_from_ms(args.chunk_ms or 640)
        left = parse_left_context(args.left_chunks or "4")
        if left is None:
            raise ConfigError("serve needs a finite --left-chunks (streams at different positions share batches "
                              "through the fixed-shape state)")
        dct = with_right_frames(DynChunkTrainConfig(chunk_frames, left),
                                model.geometry.right_frames_from_ms(args.right_ms or 0))
    chunk_frames, left = dct.chunk_size, dct.left_context_size
    decoding = _decoding(args, model)
    recognizer = StreamingRecognizer(model, dct, backend=make_backend(model, dct, "exact", backend, args.int8,
                                                                      threads=per_worker),
                                     endpointing=Endpointing() if args.endpoint else None,
                                     decoding=decoding)
    recognizer.create_stream()  # refuses what cannot batch streams at different positions, before listening

    def ready(server) -> None:
        scheme = "wss" if config.certfile else "ws"
        print(f"streamasr serve: {scheme}://{config.host}:{server.port} ({backend}, "
              f"{model.geometry.chunk_ms(chunk_frames):g} ms chunks, {left} left chunks"
              + (f", {model.geometry.chunk_ms(right_frames(dct)):g} ms look-ahead" if right_frames(dct) else "")
              + f", {config.workers} model "
              f"threads x {per_worker} cores, max batch {config.max_batch}, max {config.max_connections} streams)",
              flush=True)

    return serve_forever(recognizer, config, ready=ready)


def _add_train_lm_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-lm",
        help="estimate a token n-gram LM (interpolated Kneser-Ney) from transcripts, for beam search fusion",
        description="Tokenize the transcripts (the wrd column) of the given manifests with the model's "
        "SentencePiece model, estimate an interpolated Kneser-Ney n-gram over the token ids and write it "
        "as an ARPA file of pieces (use with --decoding beam --lm FILE).",
    )
    parser.add_argument("model", help="model folder (its tokenizer defines the tokens)")
    parser.add_argument("--manifest", required=True, nargs="+", help="CSV manifest(s) whose wrd column is the text")
    parser.add_argument("--order", type=int, default=3, help="n-gram order (default %(default)s)")
    parser.add_argument("--output", required=True, help="ARPA file to write")
    parser.add_argument("--overwrite", action="store_true")
    parser.set_defaults(handler=_run_train_lm)


def _run_train_lm(args: argparse.Namespace) -> int:
    from streamasr.data.manifest import read_manifest

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise ConfigError(f"{output} already exists (use --overwrite to replace it)")
    if args.order < 1:
        raise ConfigError(f"--order must be >= 1, got {args.order}")
    model = load_any_model(args.model)
    tokenizer, blank = model.tokenizer, model.blank_id
    sequences = []
    for manifest in args.manifest:
        for row in read_manifest(manifest):
            sequences.append([t for t in tokenizer.encode_as_ids(row["wrd"]) if t != blank])
    vocab = tokenizer.get_piece_size()
    lm = train_ngram(sequences, vocab, args.order, exclude=(blank,))
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(output.name + ".partial")
    lm.write_arpa(staging, [tokenizer.id_to_piece(i) for i in range(vocab)])
    staging.replace(output)
    sizes = ", ".join(f"{len(table)} {k + 1}-grams" for k, table in enumerate(lm.probs))
    print(f"wrote {output}: {args.order}-gram over {vocab} tokens from {len(sequences)} transcripts ({sizes})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamasr", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_corpus_parser(subparsers)
    _add_prepare_parser(subparsers)
    _add_validate_parser(subparsers)
    _add_evaluate_parser(subparsers)
    _add_check_parser(subparsers)
    _add_export_parser(subparsers)
    _add_export_onnx_parser(subparsers)
    _add_check_sherpa_parser(subparsers)
    _add_serve_parser(subparsers)
    _add_transcribe_parser(subparsers)
    _add_train_lm_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except StreamAsrError as error:
        print(f"streamasr {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"streamasr {args.command}: interrupted", file=sys.stderr)
        return 130


def run() -> int:
    """The ``streamasr`` console command: the denormal flush first (before torch starts
    its worker threads, see streamasr/cpu.py), then ``main``. ``main`` itself leaves the
    process's floating-point mode alone, so calling it inside another program (or a
    test run) cannot put some threads in flush-to-zero mode and not others."""
    flush_denormals()
    return main()


if __name__ == "__main__":
    sys.exit(run())
