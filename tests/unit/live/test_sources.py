"""Audio sources: block-wise resampling equals whole-signal resampling, stereo and
other rates with notices, common formats, ffmpeg, bad files named."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile
import speechbrain as sb

from streamasr.live import (
    AudioError,
    StreamingResampler,
    open_source,
    resample_whole,
    transcribe_source,
)


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
