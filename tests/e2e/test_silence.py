"""A trained model on silence (train.py's tiny model: random weights would decode
tokens out of silence): `transcribe --endpoint` fires rule 1 (2.4 s, nothing decoded)
twice, and the Transcriber's final event is empty."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from helpers.common import cli
from streamasr.live import open_source, transcribe_source
from streamasr.model import load_model


def test_transcribe_endpoint_on_silence(tiny_model_folder, tmp_path):
    """A trained model on 6 s of silence: rule 1 (2.4 s, nothing decoded) twice."""
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(6 * 16000, dtype=np.float32), 16000)
    result = cli("transcribe", path, "--model", tiny_model_folder, "--chunk-ms", "320", "--endpoint", "--json")
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    events = [json.loads(line) for line in result.stdout.decode().splitlines()]
    segments = [e for e in events if e["type"] == "segment"]
    assert [e["rule"] for e in segments] == [1, 1] and [e["segment"] for e in segments] == [0, 1]
    assert [e["audio_ms"] for e in segments] == [2560.0, 5120.0]  # the first 320 ms chunk ending past 2.4 s
    assert events[-1]["type"] == "final"


def test_silence_gives_an_empty_transcript(tiny_model_folder, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000 * 3, np.float32), 16000)
    events = list(transcribe_source(load_model(tiny_model_folder), open_source(str(path))))
    assert events[-1].kind == "final" and events[-1].text == ""
