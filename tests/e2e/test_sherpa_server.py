"""sherpa-onnx's own C++ WebSocket server (the sherpa-onnx-bin package) serving our
model: transcripts over its protocol, streams at once, equal the Python API's; the
`streamasr check-sherpa` command end to end."""

from __future__ import annotations

import json

import numpy as np

from helpers.common import cli
from streamasr.export.sherpa import export_sherpa_onnx, sherpa_decode, sherpa_recognizer
from streamasr.export.sherpa_check import load_manifest, load_test, server_transcripts, sherpa_server


def test_cpp_server_transcripts_equal_the_python_api(kaldi_model, tiny_corpus, tmp_path):
    folder = export_sherpa_onnx(kaldi_model, tmp_path / "320ms", 320, 2).folder
    waves = [u.wave.numpy() for u in load_manifest(tiny_corpus / "test_voices.csv")]
    expected = [r["text"] for r in sherpa_decode(sherpa_recognizer(folder), waves)]
    assert all(len(text) > 20 for text in expected)
    with sherpa_server(folder, max_batch=4) as port:
        results = server_transcripts(port, waves, concurrency=4)  # 4 streams batched at once
        load = load_test(port, waves, streams=3, seconds=2.0, message_seconds=0.32)
    assert [r["text"] for r in results] == expected
    assert all(r["messages"] >= 1 for r in results)
    assert load["streams"] == 3 and load["final_latency_max"] < 10


def test_check_sherpa_command(kaldi_model_folder, tiny_corpus, tmp_path):
    out = tmp_path / "check"
    result = cli("check-sherpa", kaldi_model_folder, "--manifest", tiny_corpus / "test_voices.csv",
                 "--chunk-ms", "640", "--server", "--output", out)
    assert result.returncode == 0, result.stderr[-3000:].decode(errors="replace")
    report = json.loads((out / "sherpa_check.json").read_text())
    comparison = report["comparisons"][0]
    assert comparison["utterances"] == 4 and comparison["server"]["total"] == 4
    assert "| 640 ms | 4 | 4 |" in (out / "sherpa_check.md").read_text()
    assert (kaldi_model_folder / "sherpa-onnx" / "640ms_left4" / "README.md").is_file()
    refused = cli("export-onnx", kaldi_model_folder, tmp_path / "x", "--force")
    assert refused.returncode == 2 and b"--force applies to --target sherpa-onnx only" in refused.stderr
    assert np.isfinite(comparison["wer_sherpa"])
