"""Folder writes that cannot destroy what they read (streamasr.files): a destination
that is, or contains, the source is refused; ``overwrite`` replaces only an earlier
export; a failed build leaves the old folder as it was."""

from __future__ import annotations

import json
import os

import pytest

from streamasr.errors import ExportError
from streamasr.files import check_destination, is_streamasr_export, staged_folder


def _model(tmp_path):
    model = tmp_path / "parent" / "model"
    model.mkdir(parents=True)
    (model / "model.ckpt").write_bytes(b"weights")
    (model / "hyperparams.yaml").write_text("x: 1\n")
    return model


def _export(folder, **meta):
    folder.mkdir(parents=True)
    (folder / "export.json").write_text(json.dumps({"exported_by": "streamasr", **meta}))
    (folder / "encoder.onnx").write_bytes(b"old")
    return folder


@pytest.mark.parametrize("where", ["itself", "parent", "grandparent"])
def test_a_destination_that_is_or_contains_the_source_is_refused_even_with_overwrite(tmp_path, where):
    model = _model(tmp_path)
    out = {"itself": model, "parent": model.parent, "grandparent": tmp_path}[where]
    what = "is" if where == "itself" else "contains"
    with pytest.raises(ExportError, match=f"{what} .*which this export reads: choose an output folder outside it"):
        with staged_folder(out, [model], overwrite=True) as staging:
            (staging / "encoder.onnx").write_bytes(b"new")
    assert (model / "model.ckpt").read_bytes() == b"weights"
    assert sorted(p.name for p in model.iterdir()) == ["hyperparams.yaml", "model.ckpt"]


def test_the_working_directory_as_destination_is_refused(tmp_path, monkeypatch):
    model = _model(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportError, match="contains"):
        check_destination(".", [model], overwrite=True)


def test_overwrite_refuses_a_folder_that_is_not_an_export_and_names_what_is_there(tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"notes holds keep.txt, not an earlier streamasr export .*nothing was "
                                          r"written"):
        with staged_folder(other, [], overwrite=True):
            pass
    assert (other / "keep.txt").read_text() == "mine"


def test_without_overwrite_an_existing_folder_is_refused(tmp_path):
    old = _export(tmp_path / "out")
    with pytest.raises(ExportError, match=r"out already exists \(use --overwrite to replace it\)"):
        check_destination(old, [], overwrite=False)


def test_overwrite_replaces_an_earlier_export_and_an_empty_folder(tmp_path):
    old = _export(tmp_path / "out")
    with staged_folder(old, [], overwrite=True) as staging:
        (staging / "export.json").write_text(json.dumps({"exported_by": "streamasr"}))
    assert sorted(p.name for p in old.iterdir()) == ["export.json"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with staged_folder(empty, [], overwrite=False) as staging:
        (staging / "a").write_text("a")
    assert (empty / "a").read_text() == "a"


def test_exports_written_before_the_marker_are_recognised(tmp_path):
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    (onnx / "export.json").write_text(json.dumps({"format": "streamasr-onnx"}))
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "export.json").write_text(json.dumps({"training_folder": "/somewhere/run"}))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "export.json").write_text(json.dumps({"format": "something-else"}))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "export.json").write_text("{not json")
    assert [is_streamasr_export(f) for f in (onnx, hub, foreign, broken)] == [True, True, False, False]


def test_a_new_folder_inside_the_source_or_an_earlier_export_there_is_allowed(tmp_path):
    """``make demo`` exports results/demo/model inside its training folder, and the ONNX
    cache lives in <model>/onnx/<cell>: neither deletes anything of the source."""
    model = _model(tmp_path)
    with staged_folder(model / "onnx" / "640ms_left4", [model]) as staging:
        (staging / "export.json").write_text(json.dumps({"exported_by": "streamasr"}))
    with staged_folder(model / "onnx" / "640ms_left4", [model], overwrite=True) as staging:
        (staging / "export.json").write_text(json.dumps({"exported_by": "streamasr", "n": 2}))
    assert json.loads((model / "onnx" / "640ms_left4" / "export.json").read_text())["n"] == 2
    with pytest.raises(ExportError, match="not an earlier streamasr export"):
        check_destination(model / "onnx", [model], overwrite=True)  # would it hold a user's files: refused
    assert (model / "model.ckpt").read_bytes() == b"weights"


def test_a_file_or_a_path_under_a_file_is_named(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ExportError, match="afile is a file, not a folder"):
        check_destination(afile, [], overwrite=True)
    with pytest.raises(ExportError, match=r"cannot create .*afile/sub: .*afile is a file, not a folder"):
        check_destination(afile / "sub", [], overwrite=False)
    assert afile.read_text() == "x"


def test_a_failed_build_leaves_the_old_export_as_it_was(tmp_path):
    old = _export(tmp_path / "out")
    with pytest.raises(RuntimeError, match="boom"):
        with staged_folder(old, [], overwrite=True) as staging:
            (staging / "encoder.onnx").write_bytes(b"half")
            raise RuntimeError("boom")
    assert (old / "encoder.onnx").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder left


def test_a_symlink_to_the_source_is_seen_through(tmp_path):
    model = _model(tmp_path)
    link = tmp_path / "link"
    os.symlink(model, link)
    with pytest.raises(ExportError, match="is .*which this export reads"):
        check_destination(link, [model], overwrite=True)
