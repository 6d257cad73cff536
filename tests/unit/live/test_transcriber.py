"""The threaded Transcriber: events from another thread, a full buffer raises or
blocks and never drops audio, tiny streams and streams without audio (a trained model
on silence: tests/e2e/test_silence.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import speechbrain as sb

from helpers.common import reference_text
from streamasr.engine import Cell, EngineSpec
from streamasr.live import BufferFull, Transcriber


def test_transcriber_api_from_another_thread(model, wavs):
    audio = sb.dataio.dataio.read_audio(str(wavs[0])).numpy()
    transcriber = Transcriber(model, EngineSpec(Cell(640, 4)))

    def produce():
        for start in range(0, len(audio), 1000):
            transcriber.push(audio[start: start + 1000])
        transcriber.close()

    threading.Thread(target=produce).start()
    events = list(transcriber.events(timeout=60))
    partials, final = events[:-1], events[-1]
    assert final.kind == "final" and all(e.kind == "partial" for e in partials)
    assert final.text == reference_text(model, wavs[0]).strip()
    assert "".join(e.text for e in partials).strip() == final.text
    assert [e.chunk for e in partials] == list(range(len(partials)))
    starts = [t["start_ms"] for e in partials for t in e.tokens]
    assert starts == sorted(starts) and starts and all(s % 40 == 0 for s in starts)
    assert all(0 < t["confidence"] <= 1 for e in partials for t in e.tokens)
    audio_ms = [e.audio_ms for e in partials]
    assert audio_ms == sorted(audio_ms)
    assert final.audio_ms == pytest.approx(len(audio) / 16)
    assert final.rtf is not None and final.rtf > 0


def test_full_buffer_raises_or_blocks_never_drops(model):
    transcriber = Transcriber(model, EngineSpec(Cell(640, 4)), max_buffer_seconds=0.1, on_full="raise")
    gate, taken = threading.Event(), threading.Event()
    original = transcriber.recognizer.accept_audio

    def held(state, block):
        taken.set()
        gate.wait()
        return original(state, block)

    transcriber.recognizer.accept_audio = held
    transcriber.push(np.zeros(1000, np.float32))
    # the worker takes the first block and waits at the gate (an event, not a sleep:
    # a busy machine may take longer than any fixed delay)
    assert taken.wait(timeout=60)
    transcriber.push(np.zeros(1000, np.float32))  # 1000 of 1600 samples pending
    with pytest.raises(BufferFull, match="buffer full: 1000 of 1600 samples pending, 1000 more pushed"):
        transcriber.push(np.zeros(1000, np.float32))
    transcriber.on_full = "block"
    with pytest.raises(BufferFull, match="still full after 0.2 s"):
        transcriber.push(np.zeros(1000, np.float32), timeout=0.2)
    threading.Timer(0.3, gate.set).start()
    transcriber.push(np.zeros(1000, np.float32), timeout=10)  # blocks until the worker drains
    transcriber.close()
    final = list(transcriber.events(timeout=60))[-1]
    assert final.audio_ms == pytest.approx(3000 / 16)  # every accepted sample was recognised


def test_a_stream_of_a_few_samples_is_transcribed_without_error(model):
    transcriber = Transcriber(model)
    transcriber.push(np.full(37, 0.01, np.float32))
    transcriber.close()
    final = list(transcriber.events(timeout=60))[-1]
    assert final.kind == "final" and final.audio_ms == pytest.approx(37 / 16)


def test_closing_without_audio_gives_an_empty_final_event(model):
    transcriber = Transcriber(model, EngineSpec(Cell(640, 4)))
    transcriber.close()
    events = list(transcriber.events(timeout=60))
    assert [(e.kind, e.text, e.audio_ms) for e in events] == [("final", "", 0.0)]
