"""Audio sources: block-wise resampling equals whole-signal resampling, stereo and
other rates with notices, common formats, ffmpeg, bad files named."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess

import numpy as np
import pytest
import soundfile
import speechbrain as sb

from streamasr.errors import ConfigError
from streamasr.live import (
    AudioError,
    PcmStreamSource,
    StreamingResampler,
    TruncatedAudioError,
    open_source,
    open_stdin,
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


def int16_wav(path, samples: int = 44555, rate: int = 16000, channels: int = 1):
    shape = (samples, channels) if channels > 1 else (samples,)
    audio = (np.random.default_rng(0).standard_normal(shape) * 3000).astype(np.int16)
    soundfile.write(path, audio, rate, subtype="PCM_16")
    return path, audio


def test_a_truncated_wav_is_refused_before_decoding_not_half_transcribed(tmp_path):
    good, _ = int16_wav(tmp_path / "good.wav")
    truncated = tmp_path / "trunc.wav"
    truncated.write_bytes(good.read_bytes()[:44000])  # head -c 44000
    with pytest.raises(TruncatedAudioError) as error:
        open_source(str(truncated))  # and not handed to ffmpeg, which would decode the half
    assert str(error.value) == (f"{truncated} is truncated: its header declares 44555 samples (2.78 s), "
                                "the file holds 21978 (1.37 s)")


def test_a_wav_written_while_streaming_is_read_whole(tmp_path):
    good, audio = int16_wav(tmp_path / "good.wav")
    data = bytearray(good.read_bytes())
    data[4:8] = data[40:44] = struct.pack("<I", 0xFFFFFFFF)  # what ffmpeg writes to a pipe
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data))
    blocks = np.concatenate(list(open_source(str(streamed)).blocks()))
    np.testing.assert_array_equal(blocks, audio.astype(np.float32) / 32768)


def test_a_directory_is_named_as_a_directory(tmp_path):
    folder = tmp_path / "adir"
    folder.mkdir()
    with pytest.raises(AudioError) as error:
        open_source(str(folder))
    assert str(error.value) == f"{folder} is a directory, not an audio file"


def test_an_empty_file_is_named_as_empty_not_sent_to_ffmpeg(tmp_path):
    empty = tmp_path / "zero.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError) as error:
        open_source(str(empty))
    assert str(error.value) == f"{empty} is empty (0 bytes)"


def test_a_wav_on_stdin_is_read_by_its_header(tmp_path):
    """``cat st22.wav | streamasr transcribe -``: rate, channels and sample format come
    from the header, which is not decoded as samples."""
    path, audio = int16_wav(tmp_path / "st22.wav", samples=5000, rate=22050, channels=2)
    source = open_stdin(io.BytesIO(path.read_bytes()))
    assert (source.info.sample_rate, source.info.channels) == (22050, 2)
    raw = np.concatenate(list(source.raw_blocks()))
    np.testing.assert_array_equal(raw, audio.astype(np.float32) / 32768)


def test_a_float_wav_on_stdin_stops_at_its_data_chunk(tmp_path):
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 3000).astype(np.float32)
    path = tmp_path / "f32.wav"
    soundfile.write(path, audio, 16000, subtype="FLOAT")
    trailing = path.read_bytes() + b"LIST\x04\x00\x00\x00INFO"  # a chunk after the data is not audio
    raw = np.concatenate(list(open_stdin(io.BytesIO(trailing)).raw_blocks()))
    np.testing.assert_array_equal(raw[:, 0], audio)


def test_a_truncated_wav_on_stdin_is_named_after_its_blocks(tmp_path):
    path, _ = int16_wav(tmp_path / "good.wav")
    source = open_stdin(io.BytesIO(path.read_bytes()[:44000]))
    with pytest.raises(TruncatedAudioError) as error:
        list(source.raw_blocks())
    assert str(error.value) == ("stdin is truncated: its header declares 44555 samples (2.78 s), "
                                "the stream holds 21978 (1.37 s)")


def test_raw_pcm_on_stdin_keeps_the_bytes_read_to_look_for_a_header():
    samples = np.array([1, -2, 3, -4, 5], dtype="<i2")  # 10 bytes: fewer than a RIFF header
    raw = np.concatenate(list(open_stdin(io.BytesIO(samples.tobytes())).raw_blocks()))
    np.testing.assert_array_equal(raw[:, 0], samples / 32768)


@pytest.mark.parametrize("rate,channels,message", [
    (0, 1, "stdin: the sample rate must be a whole number of Hz above 0, got 0"),
    (-5, 1, "stdin: the sample rate must be a whole number of Hz above 0, got -5"),
    (16000, 0, "stdin: the channel count must be a whole number above 0, got 0"),
])
def test_a_stdin_rate_or_channel_count_below_1_is_refused(rate, channels, message):
    for make in (open_stdin, PcmStreamSource):
        with pytest.raises(ConfigError) as error:
            make(io.BytesIO(b"\0" * 64), rate, channels)
        assert str(error.value) == message


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is optional and not installed")
def test_a_wav_with_a_zero_data_size_goes_through_ffmpeg(tmp_path):
    """Some recorders leave 0 in the data size; libsndfile reads nothing past it, ffmpeg
    reads the file."""
    good, audio = int16_wav(tmp_path / "good.wav", samples=8000)
    data = bytearray(good.read_bytes())
    data[40:44] = struct.pack("<I", 0)
    zero = tmp_path / "zero_size.wav"
    zero.write_bytes(bytes(data))
    source = open_source(str(zero))
    assert source.info.kind == "ffmpeg"
    assert len(np.concatenate(list(source.blocks()))) == len(audio)
