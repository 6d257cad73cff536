"""Complete audio: a file holding less than its header declares is named with both
lengths; WAV headers written while streaming, RF64, WAVE_FORMAT_EXTENSIBLE, padded
chunks and trailing chunks are followed, not refused."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamasr.data.audio import check_audio_complete
from streamasr.errors import TruncatedAudioError

SAMPLES = 44555  # 2.78 s at 16 kHz, the probe's file


def speech_like(samples: int = SAMPLES, channels: int = 1) -> np.ndarray:
    shape = (samples, channels) if channels > 1 else (samples,)
    return (np.random.default_rng(0).standard_normal(shape) * 3000).astype(np.int16)


def wav_file(folder: Path, name: str = "good.wav", **options) -> Path:
    path = folder / name
    channels = options.pop("channels", 1)
    sf.write(path, speech_like(channels=channels), 16000, subtype=options.pop("subtype", "PCM_16"), **options)
    return path


def cut(path: Path, size: int, name: str) -> Path:
    """``head -c size path > name``."""
    out = path.with_name(name)
    out.write_bytes(path.read_bytes()[:size])
    return out


def riff(*chunks: tuple[bytes, bytes]) -> bytes:
    """A RIFF/WAVE file of the given (id, body) chunks, odd bodies padded as RIFF asks."""
    body = b"WAVE" + b"".join(cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)
                              for cid, data in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


FMT_16K_MONO_PCM16 = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)


def test_a_truncated_wav_is_named_with_the_declared_and_present_lengths(tmp_path):
    truncated = cut(wav_file(tmp_path), 44000, "trunc.wav")
    assert sf.info(truncated).frames == 21978  # libsndfile reports what is left, not the header
    with pytest.raises(TruncatedAudioError) as error:
        check_audio_complete(truncated)
    assert str(error.value) == (f"{truncated} is truncated: its header declares 44555 samples (2.78 s), "
                                "the file holds 21978 (1.37 s)")


def test_a_complete_wav_gives_its_length_and_layout(tmp_path):
    found = check_audio_complete(wav_file(tmp_path))
    assert (found.frames, found.sample_rate, found.channels, found.format) == (SAMPLES, 16000, 1, "WAV")
    assert found.seconds == pytest.approx(SAMPLES / 16000)


@pytest.mark.parametrize("size", [0xFFFFFFFF, 0x7FFFFFFF])
def test_a_streamed_or_oversized_riff_size_with_unknown_data_size_is_accepted(tmp_path, size):
    """ffmpeg writing to a pipe leaves 0xFFFFFFFF in the data size: the length is
    unknown, not a truncation."""
    data = bytearray(wav_file(tmp_path).read_bytes())
    assert data[36:40] == b"data"
    data[4:8] = struct.pack("<I", size)
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data))
    assert check_audio_complete(streamed).frames == SAMPLES


def test_a_truncated_rf64_file_is_detected(tmp_path):
    rf64 = wav_file(tmp_path, "big.wav", format="RF64")
    assert rf64.read_bytes()[:4] == b"RF64"
    with pytest.raises(TruncatedAudioError, match=r"declares 44555 samples \(2.78 s\), the file holds 21"):
        check_audio_complete(cut(rf64, 44100, "big_cut.wav"))


def test_a_truncated_wave_format_extensible_file_is_detected(tmp_path):
    extensible = wav_file(tmp_path, "ext.wav", channels=3, subtype="PCM_24", format="WAVEX")
    assert struct.unpack("<H", extensible.read_bytes()[20:22])[0] == 0xFFFE
    size = len(extensible.read_bytes())
    with pytest.raises(TruncatedAudioError, match=r"declares 44555 samples \(2.78 s\), the file holds 22"):
        check_audio_complete(cut(extensible, size // 2, "ext_cut.wav"))


def test_chunks_of_odd_size_are_skipped_with_their_pad_byte(tmp_path):
    samples = speech_like(1000).tobytes()
    chunks = [(b"LIST", b"odd"), (b"fmt ", FMT_16K_MONO_PCM16), (b"data", samples)]
    padded = tmp_path / "padded.wav"
    padded.write_bytes(riff(*chunks))
    assert check_audio_complete(padded).frames == 1000
    short = tmp_path / "padded_cut.wav"
    short.write_bytes(riff(*chunks)[:-100])
    with pytest.raises(TruncatedAudioError, match=r"declares 1000 samples \(0.06 s\), the file holds 950"):
        check_audio_complete(short)


def test_chunks_after_the_data_are_not_audio_and_not_a_problem(tmp_path):
    trailing = tmp_path / "trailing.wav"
    trailing.write_bytes(riff((b"fmt ", FMT_16K_MONO_PCM16), (b"data", speech_like(1000).tobytes()),
                              (b"LIST", b"INFOISFT\x04\0\0\0ffmp")))
    assert check_audio_complete(trailing).frames == 1000


def test_a_truncated_flac_is_detected_by_seeking_to_its_declared_end(tmp_path):
    flac = wav_file(tmp_path, "good.flac", format="FLAC")
    size = len(flac.read_bytes())
    with pytest.raises(TruncatedAudioError, match=r"good_cut.flac is truncated: its header declares 44555 samples"):
        check_audio_complete(cut(flac, size // 2, "good_cut.flac"))
