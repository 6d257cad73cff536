"""Exports carry no local path: the same training run exported from two absolute
locations gives the same bytes in every file, and no file names the machine's folders
(the run's, the checkout's or the home folder)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from helpers.common import REPO
from streamasr.export import export
from streamasr.export.onnx import export_onnx
from streamasr.export.sherpa import export_sherpa_onnx, write_sherpa_readme
from streamasr.model import load_model


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _local_paths(files: dict[str, bytes], paths: list[str]) -> list[str]:
    return [f"{name}: {path}" for name, data in files.items() for path in paths if path.encode() in data]


def test_the_same_run_exported_from_two_places_gives_the_same_bytes_and_no_local_path(random_model_folder,
                                                                                         tmp_path_factory):
    base = tmp_path_factory.mktemp("portable")
    runs = [base / "alice" / "experiments" / "run", base / "bob" / "run"]
    outputs = []
    for run in runs:
        shutil.copytree(random_model_folder, run)
        hub = export(run, run.parent / "published" / "model", average=1)
        model = load_model(hub)
        onnx = export_onnx(model, run.parent / "published" / "onnx", 640, 4).folder
        sherpa = export_sherpa_onnx(model, run.parent / "published" / "sherpa", 640, 4, force=True)
        write_sherpa_readme(sherpa)
        outputs.append([_files(hub), _files(onnx), _files(sherpa.folder)])
    local = [str(base), str(tmp_path_factory.getbasetemp()), str(REPO), os.path.expanduser("~")]
    for kind, first, second in zip(("export", "export-onnx", "export-onnx --target sherpa-onnx"), *outputs):
        assert sorted(first) == sorted(second), kind
        differing = [name for name in first if first[name] != second[name]]
        assert differing == [], f"{kind}: {differing}"
        assert _local_paths(first, local) == [], kind
    meta = json.loads(outputs[0][0]["export.json"])
    assert meta["source"] == "run" and meta["exported_by"] == "streamasr"
    assert all(not path.startswith("/") for path in meta["checkpoints"])
    onnx_meta = json.loads(outputs[0][1]["export.json"])
    assert onnx_meta["source"] == "model" and len(onnx_meta["checkpoint"]) == 16
    assert "streamasr_version" in onnx_meta and "git_commit" in onnx_meta
