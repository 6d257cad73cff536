"""Live transcription: sources, on-the-fly resampling, the push/pull Transcriber, the
`streamasr transcribe` command, bad input and flat memory on a long file."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile
import speechbrain as sb
import torch
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from conftest import audio_paths
from streamasr.live import (
    AudioError,
    BufferFull,
    SoundFileSource,
    StreamingResampler,
    Transcriber,
    open_source,
    resample_whole,
    transcribe_source,
)
from streamasr.model import load_model
from streamasr.streaming import StreamingRecognizer


@pytest.fixture(scope="module")
def model(random_model_folder):
    torch.set_num_threads(1)
    return load_model(random_model_folder)


@pytest.fixture(scope="module")
def wavs(tiny_corpus):
    return audio_paths(tiny_corpus)


def reference_text(model, wav_path, chunk_frames=16, left=4):
    wav = sb.dataio.dataio.read_audio(str(wav_path))
    state, _ = StreamingRecognizer(model, DynChunkTrainConfig(chunk_frames, left)).transcribe(wav)
    return state.texts[0]


def cli(*args, stdin=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "streamasr.cli", *map(str, args)], input=stdin,
                          capture_output=True, timeout=timeout)


@pytest.mark.parametrize("orig,new", [(44100, 16000), (8000, 16000), (22050, 16000), (48000, 16000)])
def test_streaming_resampler_equals_whole_signal_resampling(orig, new):
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(orig * 2 + 123).astype(np.float32) * 0.1
    whole = resample_whole(signal, orig, new)
    resampler = StreamingResampler(orig, new)
    pieces, position = [], 0
    for size in rng.integers(1, 5000, size=1000):
        if position >= len(signal):
            break
        pieces.append(resampler.process(signal[position: position + size]))
        position += size
    pieces.append(resampler.process(np.zeros(0, np.float32), final=True))
    streamed = np.concatenate(pieces)
    assert len(streamed) == len(whole)
    np.testing.assert_allclose(streamed, whole, atol=2e-5)


def test_stereo_44k_file_is_downmixed_and_resampled_with_a_notice(tmp_path, wavs, capsys):
    mono = sb.dataio.dataio.read_audio(str(wavs[0])).numpy()
    up = resample_whole(mono, 16000, 44100)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([up, up], axis=1), 44100)
    blocks = list(open_source(str(path)).blocks())
    streamed = np.concatenate(blocks)
    expected = resample_whole(soundfile.read(path, dtype="float32")[0].mean(axis=1), 44100, 16000)
    np.testing.assert_allclose(streamed, expected, atol=2e-5)
    err = capsys.readouterr().err
    assert "2 channels, downmixed to mono" in err and "44100 Hz, resampled to 16000 Hz" in err


@pytest.mark.parametrize("fmt,ext", [("OGG", "ogg"), ("FLAC", "flac"), ("MP3", "mp3")])
def test_common_formats_decode(tmp_path, wavs, fmt, ext):
    audio, rate = soundfile.read(wavs[0], dtype="float32")
    path = tmp_path / f"clip.{ext}"
    soundfile.write(path, audio, rate, format=fmt)
    streamed = np.concatenate(list(open_source(str(path)).blocks()))
    assert abs(len(streamed) - len(audio)) < 0.05 * rate  # mp3 adds encoder padding
    assert np.abs(streamed).max() > 0.05


def test_transcriber_api_from_another_thread(model, wavs):
    audio = sb.dataio.dataio.read_audio(str(wavs[0])).numpy()
    transcriber = Transcriber(model, chunk_ms=640, left_chunks=4)

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
    transcriber = Transcriber(model, chunk_ms=640, left_chunks=4, max_buffer_seconds=0.1, on_full="raise")
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


def test_a_stream_of_a_few_samples_is_transcribed_without_error(model):
    transcriber = Transcriber(model)
    transcriber.push(np.full(37, 0.01, np.float32))
    transcriber.close()
    final = list(transcriber.events(timeout=60))[-1]
    assert final.kind == "final" and final.audio_ms == pytest.approx(37 / 16)


def test_silence_gives_an_empty_transcript(tiny_model_folder, tmp_path):
    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(16000 * 3, np.float32), 16000)
    events = list(transcribe_source(load_model(tiny_model_folder), open_source(str(path))))
    assert events[-1].kind == "final" and events[-1].text == ""


@pytest.mark.parametrize("content,message", [
    (b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10, "cannot decode audio"),
    (b"just some text, not audio\n" * 20, "cannot decode audio"),
])
def test_corrupt_and_unsupported_files_are_named(tmp_path, content, message, monkeypatch):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    monkeypatch.setattr("shutil.which", lambda name: None)  # soundfile only: its message
    with pytest.raises(AudioError, match=f"{path}: {message}"):
        open_source(str(path))


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


def test_exported_folder_transcribes_like_the_training_folder(random_model_folder, tmp_path, wavs, model):
    from streamasr.export import export

    folder = export(random_model_folder, tmp_path / "exported")
    result = cli("transcribe", wavs[2], "--model", folder)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().strip() == reference_text(model, wavs[2]).strip()


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
    for event in transcribe_source(model, open_source(str(path)), 640, 4):
        events += 1
        if event.kind == "partial" and event.chunk % 100 == 0:
            rss.append(current_rss_mb())
    assert event.kind == "final" and event.audio_ms >= 600_000
    # After warm-up (first minute), resident memory does not grow with the stream.
    assert max(rss[2:]) - rss[1] < 40, rss


@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="ffmpeg is optional and not installed")
def test_formats_libsndfile_cannot_read_go_through_ffmpeg(tmp_path, wavs, model):
    path = tmp_path / "clip.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(wavs[0]), "-c:a", "aac", str(path)],
                   check=True, timeout=60)
    source = open_source(str(path))
    assert source.info.kind == "ffmpeg"
    events = list(transcribe_source(model, source))
    assert events[-1].kind == "final" and events[-1].audio_ms == pytest.approx(
        soundfile.info(wavs[0]).duration * 1000, abs=100)
    broken = tmp_path / "broken.m4a"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(AudioError, match="broken.m4a: ffmpeg could not decode it"):
        list(transcribe_source(model, open_source(str(broken))))
