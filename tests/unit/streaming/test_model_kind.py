"""An exported folder says what kind of model it holds (``export.json`` ``model_type``),
and the runtime refuses a kind it cannot run by name rather than misreading it."""

from __future__ import annotations

import json
import shutil

import pytest

from streamasr.errors import ModelLoadError
from streamasr.streaming.onnx import MODEL_TYPES, OnnxFolder


def test_the_runtime_reads_the_model_kind_and_refuses_one_it_does_not_know(onnx_folder, tmp_path):
    folder = onnx_folder  # the random model's 320 ms / 2 left export (tests/conftest.py)
    assert json.loads((folder / "export.json").read_text())["model_type"] == MODEL_TYPES[0] == "conformer-transducer"
    other = tmp_path / "tdt"
    shutil.copytree(folder, other)
    meta = json.loads((other / "export.json").read_text())
    meta["model_type"] = "conformer-tdt"
    (other / "export.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match=r"model_type 'conformer-tdt' is not one this runtime runs "
                                             r"\(conformer-transducer\); a newer streamasr may"):
        OnnxFolder(other)
