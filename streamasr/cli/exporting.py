"""The shipping commands: ``export`` (a SpeechBrain model folder, the hub), ``export-onnx``
(onnxruntime or sherpa-onnx graphs of one cell) and ``check-sherpa`` (our model in
sherpa-onnx's runtime, ``streamasr.export.sherpa_report``). Each takes the parsed
arguments and returns the exit status."""

from __future__ import annotations

import argparse

from streamasr.errors import ConfigError
from streamasr.export import export as export_folder
from streamasr.export import push_to_hub
from streamasr.export.onnx import export_onnx as write_onnx_folder
from streamasr.export.sherpa import export_sherpa_onnx, write_sherpa_readme
from streamasr.export.sherpa_report import SherpaCheckOptions, run_check
from streamasr.model import load_model


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
                               right_ms=args.right_ms, overwrite=args.overwrite)
    checked = result.meta.get("verified_max_difference")
    print(f"wrote {result.folder}: " + ", ".join(sorted(p.name for p in result.folder.iterdir())))
    if checked:
        print("ONNX vs PyTorch, largest difference over 5 chunks: "
              + ", ".join(f"{name} {value:.1e}" for name, value in checked.items()))
    return 0


def check_sherpa(args: argparse.Namespace) -> int:
    options = SherpaCheckOptions(
        chunk_ms=[float(value) for value in args.chunk_ms.split(",") if value.strip()],
        left_chunks=args.left_chunks, right_ms=args.right_ms, limit=args.limit, server=args.server,
        load_streams=[int(value) for value in args.load_streams.split(",") if value.strip()],
        load_seconds=args.load_seconds, max_latency=args.max_latency, work_threads=args.work_threads,
        force=args.force)
    report = run_check(load_model(args.model), args.manifest, options,
                       progress=lambda line: print(line, flush=True))
    print(report.text, end="")
    if args.output:
        report.write(args.output)
    return 0


__all__ = ["check_sherpa", "export", "export_onnx"]
