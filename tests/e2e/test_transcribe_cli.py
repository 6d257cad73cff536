"""``streamasr transcribe`` as a user runs it: file and stdin PCM, bad input, flat
memory over a 10-minute file."""

from __future__ import annotations

import json

import numpy as np
import soundfile

from helpers.common import cli, reference_text
from streamasr.engine import Cell, EngineSpec
from streamasr.live import (
    open_source,
    transcribe_source,
)


def test_cli_file_and_stdin_pcm_give_the_same_text(model, random_model_folder, wavs):
    expected = reference_text(model, wavs[1]).strip()
    result = cli("transcribe", wavs[1], "--model", random_model_folder)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().strip() == expected
    audio, _ = soundfile.read(wavs[1], dtype="int16")
    piped = cli("transcribe", "-", "--model", random_model_folder, "--json", stdin=audio.tobytes())
    assert piped.returncode == 0, piped.stderr.decode()[-2000:]
    events = [json.loads(line) for line in piped.stdout.decode().splitlines()]
    assert events[-1]["type"] == "final" and events[-1]["text"] == expected
    assert {"chunk", "audio_ms", "compute_ms", "tokens"} <= set(events[0])
    assert all(set(t) == {"token", "piece", "start_ms", "confidence"} for e in events[:-1] for t in e["tokens"])


def test_bad_inputs_on_the_command_line(random_model_folder, tmp_path, wavs):
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(open(wavs[0], "rb").read()[:44])  # header only, no samples
    cases = [
        (("transcribe", empty, "--model", random_model_folder), "holds no audio samples (zero length)"),
        (("transcribe", truncated, "--model", random_model_folder), "truncated.wav"),
        (("transcribe", tmp_path / "missing.wav", "--model", random_model_folder), "missing.wav does not exist"),
        (("transcribe", wavs[0], "--model", random_model_folder, "--chunk-ms", "500"),
         "chunk size 500 ms is not a positive multiple of the encoder frame (40 ms)"),
        (("transcribe", wavs[0], "--model", tmp_path), "is neither a training output folder"),
    ]
    for args, message in cases:
        result = cli(*args)
        err = result.stderr.decode()
        assert result.returncode == 2, (args, err[-1500:])
        assert message in err and "Traceback" not in err, (args, err[-1500:])


def test_memory_stays_flat_on_a_ten_minute_file(model, wavs, tmp_path):
    speech = np.concatenate([soundfile.read(w, dtype="float32")[0] for w in wavs])
    repeats = int(np.ceil(600 * 16000 / len(speech)))
    path = tmp_path / "long.wav"
    with soundfile.SoundFile(path, "w", 16000, 1, "PCM_16") as handle:
        for _ in range(repeats):
            handle.write(speech)
    rss = []

    def current_rss_mb():
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096 / 2**20

    events = 0
    for event in transcribe_source(model, open_source(str(path)), EngineSpec(Cell(640, 4))):
        events += 1
        if event.kind == "partial" and event.chunk % 100 == 0:
            rss.append(current_rss_mb())
    assert event.kind == "final" and event.audio_ms >= 600_000
    # After warm-up (first minute), resident memory does not grow with the stream.
    assert max(rss[2:]) - rss[1] < 40, rss


def test_empty_stdin_gives_an_empty_transcript(random_model_folder):
    """As an all-silent file does; it used to stop with a torch padding error."""
    result = cli("transcribe", "-", "--model", random_model_folder, stdin=b"")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode() == "\n"
    result = cli("transcribe", "-", "--model", random_model_folder, "--json", stdin=b"")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert json.loads(result.stdout.decode()) == {"type": "final", "text": "", "audio_ms": 0.0,
                                                  "compute_ms": 0.0, "rtf": None}


def test_json_into_a_closed_pipe_ends_quietly_with_sigpipes_status(random_model_folder, wavs, tmp_path):
    """``transcribe --json | head -n 1``: the command stops when head has its line; no
    BrokenPipeError traceback, no abort (exit 134) from the thread pools."""
    import shlex
    import subprocess
    import sys

    audio, rate = soundfile.read(wavs[1], dtype="float32")
    long = tmp_path / "long.wav"  # 30 s: many partials after head has gone
    soundfile.write(long, np.tile(audio, int(np.ceil(30 * rate / len(audio)))), rate)
    command = (f"{shlex.quote(sys.executable)} -m streamasr.cli transcribe {shlex.quote(str(long))} --model "
               f"{shlex.quote(str(random_model_folder))} --json | head -n 1; echo \"status ${{PIPESTATUS[0]}}\" >&2")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert json.loads(result.stdout.splitlines()[0])["type"] == "partial"
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr.strip().splitlines()[-1] == "status 141", result.stderr
    assert "Traceback" not in result.stderr and "terminate called" not in result.stderr, result.stderr
