"""What each ``streamasr`` subcommand does, once its arguments have parsed.

This module is the one place where the command line loads the library (torch,
SpeechBrain, onnxruntime come with it): ``streamasr.cli.main`` imports it only after
parsing, so ``--help``, ``--version`` and argument errors never pay for it. Each
function takes the parsed arguments and returns the exit status; errors the user can fix
are ``StreamAsrError`` s, turned into one line by ``main``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from streamasr.cli.options import NOT_GIVEN
from streamasr.data import corpora
from streamasr.data.manifest import read_manifest, validate_manifest
from streamasr.data.synthetic import NO_AUGMENTATION, SPLITS, Augmentation, CorpusConfig
from streamasr.data.synthetic import build_corpus as synthesise_corpus
from streamasr.decoding import Decoding, load_lm, read_hotwords
from streamasr.decoding.lm import train_token_lm
from streamasr.engine import Cell, EngineSpec, build_recognizer, describe, model_cell
from streamasr.errors import ConfigError
from streamasr.evaluate import evaluate as evaluate_grid
from streamasr.evaluate import markdown_table
from streamasr.evaluate.dependency import check_encoder, encoder_from
from streamasr.evaluate.report import test_sets_table, weight_table
from streamasr.export import export as export_folder
from streamasr.export import push_to_hub, sherpa_check
from streamasr.export.onnx import export_onnx as write_onnx_folder
from streamasr.export.sherpa import export_sherpa_onnx, write_sherpa_readme
from streamasr.live import open_source, transcribe_source
from streamasr.model import load_model
from streamasr.serve import serve_forever
from streamasr.serve.config import ServeConfig
from streamasr.serve.server import bind_listener
from streamasr.streaming.endpoint import Endpointing
from streamasr.streaming.onnx import load_any_model
from streamasr.units import DEFAULT_BEAM


def checked_device(name: str) -> str:
    """``name`` when torch can use that device here; ``ConfigError`` naming what is there
    otherwise (``--device cuda`` on a machine without a GPU)."""
    kind, _, index = name.partition(":")
    available = {"cpu": lambda: True, "cuda": torch.cuda.is_available,
                 "mps": lambda: bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available(),
                 "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available()}[kind]
    if not available():
        raise ConfigError(f"--device {name}: this machine has no {kind.upper()} device that torch can use "
                          "(use --device cpu)")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                          f"numbered 0 to {torch.cuda.device_count() - 1}")
    return name


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


def _decoding(args: argparse.Namespace, model) -> Decoding:
    """The search the command line asks for, LMs loaded and checked before any work."""
    weights = {}
    for name in ("lm_weight", "lodr_weight", "hotwords_score"):
        try:
            weights[name] = float(getattr(args, name))
        except ValueError:
            raise ConfigError(f"--{name.replace('_', '-')} must be a number, got {getattr(args, name)!r}") from None
    beam = args.beam if args.beam is not None else DEFAULT_BEAM
    spec = Decoding(args.decoding, beam, getattr(args, "nbest", 1), lm_weight=weights["lm_weight"],
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


def evaluate(args: argparse.Namespace) -> int:
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
    model = load_model(args.model, checked_device(args.device))
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


def _evaluate_sets(args: argparse.Namespace, output: str, options: dict) -> dict:
    """Evaluate every --manifest into ``output`` (one folder per test set when several);
    returns the results by test set (its file stem)."""
    if len(args.manifest) == 1:
        results = evaluate_grid(args.model, args.manifest[0], output, **options)
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
        by_set[stem] = evaluate_grid(args.model, manifest, os.path.join(output, stem), **options)
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


def export(args: argparse.Namespace) -> int:
    folder = export_folder(
        args.training_folder, args.model_folder, average=args.average, example_audio=args.example,
        results=args.results, overwrite=args.overwrite, language=args.language,
        license=args.license, dataset=args.dataset,
    )
    print(f"wrote {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())))
    if args.push_to_hub:
        url = push_to_hub(folder, args.push_to_hub, private=args.private)
        print(f"uploaded to {url}")
    return 0


def _cell(args: argparse.Namespace, model) -> Cell:
    """The cell the options ask for, each value not given taken from the model's own
    (an ONNX folder's cell, else 640 ms / 4 left chunks / no look-ahead)."""
    own = model_cell(model)
    cell = Cell(args.chunk_ms if args.chunk_ms is not None else own.chunk_ms,
                args.left_chunks if args.left_chunks is not NOT_GIVEN else own.left_chunks,
                args.right_ms if args.right_ms is not None else own.right_ms)
    cell.config(model)  # a chunk or look-ahead off the model's frame grid fails before any audio is read
    return cell


def transcribe(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model = load_any_model(args.model, device=checked_device(args.device))
    spec = EngineSpec(_cell(args, model), feature_path=args.frontend, backend=args.backend, int8=args.int8,
                      decoding=_decoding(args, model), endpointing=Endpointing() if args.endpoint else None)
    source = open_source(args.source, pcm_rate=args.rate, pcm_channels=args.channels)
    for event in transcribe_source(model, source, spec):
        if args.json:
            print(event.to_json(), flush=True)  # a closed pipe ends the command quietly (streamasr.cli.run)
        elif event.kind == "partial" and event.text:
            print(event.text, end="", flush=True)
        elif event.kind in ("segment", "final"):
            print(flush=True)
    return 0


def export_onnx(args: argparse.Namespace) -> int:
    left = args.left_chunks
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
    result = write_onnx_folder(model, args.output, args.chunk_ms, left, int8=args.int8, verify=args.verify,
                         right_ms=args.right_ms,
                         overwrite=args.overwrite)
    checked = result.meta.get("verified_max_difference")
    print(f"wrote {result.folder}: " + ", ".join(sorted(p.name for p in result.folder.iterdir())))
    if checked:
        print("ONNX vs PyTorch, largest difference over 5 chunks: "
              + ", ".join(f"{name} {value:.1e}" for name, value in checked.items()))
    return 0


def check_sherpa(args: argparse.Namespace) -> int:
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


def serve(args: argparse.Namespace) -> int:
    config = ServeConfig(host=args.host, port=args.port, max_batch=args.max_batch, workers=args.workers,
                         max_connections=args.max_connections, max_message_bytes=args.max_message_bytes,
                         max_buffer_seconds=args.max_buffer_seconds, buffer_deadline=args.buffer_deadline,
                         idle_timeout=args.idle_timeout, drain_seconds=args.drain_seconds,
                         certfile=args.certfile, keyfile=args.keyfile, record_dir=args.record_dir,
                         reuse_port=args.reuse_port)
    config.check()
    listener = bind_listener(config)  # a busy or bad port fails now, not after the model's warm-up
    per_worker = max(1, (args.threads or os.cpu_count() or 1) // config.workers)
    torch.set_num_threads(per_worker)  # per model thread: each runs its own intra-op team
    model = load_any_model(args.model, threads=per_worker)
    cell = _cell(args, model)
    if cell.left_chunks is None:
        raise ConfigError("serve needs a finite --left-chunks (streams at different positions share batches "
                          "through the fixed-shape state)")
    spec = EngineSpec(cell, backend=args.backend, int8=args.int8, threads=per_worker, decoding=_decoding(args, model),
                      endpointing=Endpointing() if args.endpoint else None).resolved(model)
    recognizer = build_recognizer(model, spec)
    recognizer.create_stream()  # refuses what cannot batch streams at different positions, before listening

    def ready(server) -> None:
        print(f"streamasr serve: {server.url} ({spec.backend}, {describe(model, recognizer.config)}, "
              f"{config.workers} model threads x {per_worker} cores, max batch {config.max_batch}, "
              f"max {config.max_connections} streams)", flush=True)

    return serve_forever(recognizer, config, ready=ready, listener=listener)


def train_lm(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise ConfigError(f"{output} already exists (use --overwrite to replace it)")
    for manifest in args.manifest:
        if Path(manifest).resolve() == output.resolve():
            raise ConfigError(f"--output {output} is the manifest it reads: choose another file")
    if output.is_dir():
        raise ConfigError(f"--output {output} is a folder, expected an ARPA file name")
    model = load_any_model(args.model)
    texts = (row["wrd"] for manifest in args.manifest for row in read_manifest(manifest))
    lm, transcripts = train_token_lm(texts, model.tokenizer, model.blank_id, args.order, output)
    vocab = model.tokenizer.get_piece_size()
    sizes = ", ".join(f"{len(table)} {k + 1}-grams" for k, table in enumerate(lm.probs))
    print(f"wrote {output}: {args.order}-gram over {vocab} tokens from {transcripts} transcripts ({sizes})")
    return 0
