"""The command line's answers to bad values, table-driven: each row is a probe of
shared/PROBES.md (or a new option), the exit status and the one line it must print.
A new option gets a row. Rows on a model folder named ``NOMODEL`` (which does not
exist) prove the check comes before any model is loaded: loading would fail with
another message."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from helpers.common import REPO
from streamasr.cli import main

RATE = "argument --rate: {} is out of range: expected 8000 to 192000 Hz"
# argv, then the line on stderr; all exit with status 2
BEFORE_ANY_MODEL = [
    (["transcribe", "-", "--model", "NOMODEL", "--rate", "0"], RATE.format(0)),
    (["transcribe", "-", "--model", "NOMODEL", "--rate", "-5"], RATE.format(-5)),
    (["transcribe", "-", "--model", "NOMODEL", "--channels", "0"],
     "argument --channels: 0 is out of range: expected 1 to 64 channels"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--chunk-ms", "0"],
     "argument --chunk-ms: 0 is out of range: expected > 0 and <= 60000 ms (a multiple of the encoder frame, 40 ms)"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--chunk-ms", "1000000"],
     "argument --chunk-ms: 1e+06 is out of range: expected > 0 and <= 60000 ms (a multiple of the encoder frame, "
     "40 ms)"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--left-chunks", "100000"],
     "left context 100000 chunks x 640 ms = 64000 s is above the 600 s allowed (use fewer chunks, or 'unlimited' "
     "where the backend supports it)"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--left-chunks", "2.5"],
     "argument --left-chunks: left context '2.5' is not a whole number of chunks or 'unlimited'"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--threads", "0"],
     "argument --threads: 0 is out of range: expected 1 to 1024 threads"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--threads", "-1"],
     "argument --threads: -1 is out of range: expected 1 to 1024 threads"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--device", "bogus"],
     "argument --device: 'bogus' is not a device: expected cpu, cuda, cuda:N, mps or xpu"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--beam", "8"],
     "--beam sets the hypotheses of beam search: add --decoding beam"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--lm", "x.arpa"], "--lm is fused in beam search only: add "
                                                                    "--decoding beam"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--decoding", "beam", "--beam", "100000"],
     "argument --beam: 100000 is out of range: expected 1 to 128 hypotheses"),
    (["transcribe", "a.wav", "--model", "NOMODEL", "--right-ms", "-40"],
     "argument --right-ms: -40 is out of range: expected 0 to 10000 ms (a multiple of the encoder frame, 40 ms)"),
    (["serve", "--model", "NOMODEL", "--port", "99999"],
     "argument --port: 99999 is out of range: expected 0 to 65535 (a TCP port; 0 = any free port)"),
    (["serve", "--model", "NOMODEL", "--max-batch", "0"], "argument --max-batch: 0 is out of range: expected 1 to 4096"),
    (["serve", "--model", "NOMODEL", "--idle-timeout", "0"],
     "argument --idle-timeout: 0 is out of range: expected > 0 seconds"),
    (["serve", "--model", "NOMODEL", "--chunk-ms", "640", "--left-chunks", "1000"],
     "left context 1000 chunks x 640 ms = 640 s is above the 600 s allowed (use fewer chunks, or 'unlimited' "
     "where the backend supports it)"),
    (["export-onnx", "NOMODEL", "out", "--chunk-ms", "0"],
     "argument --chunk-ms: 0 is out of range: expected > 0 and <= 60000 ms (a multiple of the encoder frame, 40 ms)"),
    (["evaluate", "NOMODEL", "--manifest", "t.csv", "--output", "o", "--chunk-ms", "640,abc"],
     "argument --chunk-ms: 'abc' is not a number"),
    (["evaluate", "NOMODEL", "--manifest", "t.csv", "--output", "o", "--jobs", "0"],
     "argument --jobs: 0 is out of range: expected >= 1"),
    (["evaluate", "NOMODEL", "--manifest", "t.csv", "--output", "o", "--left-chunks", "2,-3"],
     "argument --left-chunks: left context -3 is negative; expected >= 0 chunks or 'unlimited'"),
    (["build-corpus", "out", "--train-utterances", "0"], "argument --train-utterances: 0 is out of range: expected >= 1"),
    (["build-corpus", "out", "--noise-prob", "1.5"], "argument --noise-prob: 1.5 is out of range: expected 0 to 1"),
    (["train-lm", "NOMODEL", "--manifest", "t.csv", "--output", "lm.arpa", "--order", "0"],
     "argument --order: 0 is out of range: expected 1 to 10"),
    (["check-streaming", "x.yaml", "--chunk-frames", "0"],
     "argument --chunk-frames: 0 is out of range: expected 1 to 4096"),
]


def _stderr_line(argv, capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line, no usage block, no traceback
    return code, lines[0]


@pytest.mark.parametrize("argv, line", BEFORE_ANY_MODEL, ids=[" ".join(row[0][:1] + row[0][-2:])
                                                              for row in BEFORE_ANY_MODEL])
def test_a_bad_value_is_one_line_and_exit_2_before_any_model_is_loaded(argv, line, capsys):
    code, printed = _stderr_line(argv, capsys)
    assert code == 2
    assert printed.endswith(line), printed
    assert printed.startswith(f"streamasr {argv[0]}: error: ")


def test_a_device_that_is_not_there_is_named(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, printed = _stderr_line(["transcribe", "a.wav", "--model", "NOMODEL", "--device", "cuda"], capsys)
    assert (code, printed) == (2, "streamasr transcribe: error: --device cuda: this machine has no CUDA device that "
                                  "torch can use (use --device cpu)")


def test_serve_names_a_busy_port_before_loading_the_model(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, printed = _stderr_line(["serve", "--model", "NOMODEL", "--port", str(port)], capsys)
    assert code == 2
    assert printed == (f"streamasr serve: error: cannot listen on 127.0.0.1:{port}: address already in use "
                       "(another server? pick --port)")


def _listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*"))


@pytest.fixture
def model_copy(exported, tmp_path):
    folder = tmp_path / "parent" / "model"
    shutil.copytree(exported, folder)
    return folder


@pytest.mark.parametrize("out", ["itself", "parent", "cwd", "foreign"])
def test_export_onnx_never_destroys_its_model_or_a_foreign_folder(model_copy, out, capsys, monkeypatch, tmp_path):
    before = _listing(model_copy.parent)
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    monkeypatch.chdir(model_copy.parent)
    target = {"itself": model_copy, "parent": model_copy.parent, "cwd": ".", "foreign": foreign}[out]
    code, printed = _stderr_line(["export-onnx", str(model_copy), str(target), "--overwrite", "--no-verify"], capsys)
    assert code == 2
    expected = {"itself": "is", "parent": "contains", "cwd": "contains"}.get(out)
    if expected:
        assert f"{target} {expected} {model_copy}, which this export reads" in printed, printed
    else:
        assert "holds keep.txt, not an earlier streamasr export" in printed, printed
    assert _listing(model_copy.parent) == before
    assert (foreign / "keep.txt").read_text() == "mine"


def test_export_onnx_into_or_under_a_file_is_named(model_copy, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, printed = _stderr_line(["export-onnx", str(model_copy), str(afile), "--overwrite"], capsys)
    assert (code, printed) == (2, f"streamasr export-onnx: error: {afile} is a file, not a folder: choose another "
                                  "output folder (nothing was written)")
    code, printed = _stderr_line(["export-onnx", str(model_copy), str(afile / "sub")], capsys)
    assert (code, printed) == (2, f"streamasr export-onnx: error: cannot create {afile / 'sub'}: {afile} is a file, "
                                  "not a folder")
    assert afile.read_text() == "x"


@pytest.mark.parametrize("out", ["itself", "save"])
def test_export_never_destroys_the_training_folder(random_model_folder, tmp_path, out, capsys):
    training = tmp_path / "run"
    shutil.copytree(random_model_folder, training)
    before = _listing(training)
    target = training if out == "itself" else training / "save"
    code, printed = _stderr_line(["export", str(training), str(target), "--overwrite"], capsys)
    assert code == 2
    assert ("which this export reads" if out == "itself" else "not an earlier streamasr export") in printed, printed
    assert _listing(training) == before


def test_train_lm_refuses_to_write_over_its_manifest(tmp_path, capsys):
    manifest = tmp_path / "t.csv"
    manifest.write_text("ID,duration,wav,wrd\n")
    code, printed = _stderr_line(["train-lm", "NOMODEL", "--manifest", str(manifest), "--output", str(manifest),
                                  "--overwrite"], capsys)
    assert (code, printed) == (2, f"streamasr train-lm: error: --output {manifest} is the manifest it reads: choose "
                                  "another file")
    assert manifest.read_text() == "ID,duration,wav,wrd\n"


def test_a_truncated_wav_is_named_not_half_transcribed(exported, tmp_path, capsys):
    wav = tmp_path / "whole.wav"
    sf.write(wav, np.zeros(44555, np.float32), 16000, subtype="PCM_16")
    truncated = tmp_path / "trunc.wav"
    truncated.write_bytes(wav.read_bytes()[:44000])
    code, printed = _stderr_line(["transcribe", str(truncated), "--model", str(exported)], capsys)
    assert code == 2
    assert "trunc.wav is truncated: its header declares 44555 samples" in printed, printed


def test_a_binary_lm_and_a_non_utf8_hotwords_file_are_named(exported, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(8000, np.float32), 16000)
    kenlm = tmp_path / "lm.bin"
    kenlm.write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\x00\x01" + struct.pack("<I", 7))
    code, printed = _stderr_line(["transcribe", str(wav), "--model", str(exported), "--decoding", "beam", "--lm",
                                  str(kenlm)], capsys)
    assert code == 2 and "lm.bin looks like a binary KenLM file: write an ARPA file instead" in printed, printed
    hotwords = tmp_path / "hot.txt"
    hotwords.write_bytes(b"\xff\xfe\x00H\x00I")
    code, printed = _stderr_line(["transcribe", str(wav), "--model", str(exported), "--decoding", "beam",
                                  "--hotwords", str(hotwords)], capsys)
    assert code == 2 and "looks like UTF-16" in printed, printed


def test_help_version_and_argument_errors_do_not_load_torch():
    probe = (
        "import sys\n"
        "from streamasr.cli.parsers import build_parser\n"
        "parser = build_parser()\n"
        "parser.parse_args(['transcribe', 'a.wav', '--model', 'm', '--chunk-ms', '320', '--decoding', 'beam'])\n"
        "parser.parse_args(['serve', '--model', 'm', '--port', '0'])\n"
        "heavy = [m for m in ('torch', 'speechbrain', 'onnxruntime', 'torchaudio') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    version = subprocess.run([sys.executable, "-m", "streamasr.cli", "--version"], capture_output=True, text=True,
                             cwd=REPO, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("streamasr 0."), version
    bad = subprocess.run([sys.executable, "-X", "importtime", "-m", "streamasr.cli", "transcribe", "-", "--model",
                          "m", "--rate", "0"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2
    assert "| torch\n" not in bad.stderr and RATE.format(0) in bad.stderr
    assert "streamasr.cli.running" not in bad.stderr and "streamasr.cli.common" not in bad.stderr


def test_every_subcommand_names_a_handler_in_its_command_module():
    import argparse

    from streamasr.cli import resolve_handler
    from streamasr.cli.parsers import build_parser

    subcommands = next(action for action in build_parser()._actions
                       if isinstance(action, argparse._SubParsersAction)).choices
    for name, parser in subcommands.items():
        handler = parser.get_default("handler")
        module, _, function = handler.partition(":")
        assert resolve_handler(handler).__module__ == f"streamasr.cli.{module}", name
        assert resolve_handler(handler).__name__ == function, name


def test_serve_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default 127.0.0.1)", "(default 6006;", "streams per model call (default 32)",
                    "(default 200)", "(default 30.0)", "(default 10.0)", "(default 60.0)", "(default 5.0)",
                    "(default 1048576)"):
        assert default in text, default


def test_export_json_of_an_onnx_folder_names_no_absolute_path(exported):
    meta_files = list(exported.glob("export.json"))
    assert meta_files
    meta = json.loads(meta_files[0].read_text())
    assert meta["exported_by"] == "streamasr" and not str(meta["source"]).startswith("/")
