"""Whether an audio file is complete: every command that reads audio asks this first.

A WAV file cut short (an interrupted copy or download, ``head -c``) still opens:
libsndfile clamps its length to the bytes present, so ``soundfile.info(...).frames`` is
the length of what is left, not the length the header declares, and reading it returns
fewer samples without any error. Transcription, validation and training would then use
half an utterance against its whole transcript. ``check_audio_complete`` compares the
WAV data chunk's declared size with the bytes actually in the file (parsing the RIFF
chunks itself: exact, and it reads only the header). For other formats it asks
libsndfile to seek to the last sample the header declares: a truncated FLAC fails there
(reading it raises "flac decoder lost sync"), so does an MP3 whose Xing header gives its
length, while formats without a declared length (Ogg, MP3 without a Xing header) carry
nothing to compare with.

The same RIFF parser reads WAV headers arriving on a stream (``transcribe -``), where
nothing can seek: ``read_wav_stream_header``.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from typing import BinaryIO

import numpy as np
import soundfile as sf

from streamasr.errors import AudioError, TruncatedAudioError, UndecodableAudioError

__all__ = ["CompleteAudio", "WavHeader", "check_audio_complete", "read_wav_header", "read_wav_stream_header",
           "truncated_error"]

WAV_MAGICS = (b"RIFF", b"RF64", b"BW64")  # RF64 / BW64: 64-bit sizes in a ds64 chunk
# A data size a writer puts when it cannot seek back to fill in the real one (ffmpeg to
# a pipe writes 0xFFFFFFFF, some recorders 0): the length is unknown, not zero.
UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_ALAW, WAVE_FORMAT_MULAW = 1, 3, 6, 7
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# Formats whose block_align is exactly one frame (one sample of every channel).
FRAME_FORMATS = (WAVE_FORMAT_PCM, WAVE_FORMAT_IEEE_FLOAT, WAVE_FORMAT_ALAW, WAVE_FORMAT_MULAW)
_MAX_HEADER_CHUNK = 1 << 20  # a fmt or ds64 chunk larger than this is garbage, not a header
# libsndfile estimates an MP3's length from its size and bit rate unless a Xing / Info
# header gives it: a complete CBR file may decode a few MPEG frames fewer than estimated.
_ESTIMATED_LENGTH_SLACK = {"MP3": (0.1, 0.02)}  # format: (seconds, share), the larger counts


@dataclasses.dataclass(frozen=True)
class WavHeader:
    """What a WAV (RIFF / RF64 / BW64) header says about the audio that follows it."""

    format_tag: int  # 1 PCM, 3 IEEE float, ...; WAVE_FORMAT_EXTENSIBLE resolved to its sub-format
    channels: int
    sample_rate: int
    byte_rate: int  # average bytes per second
    block_align: int  # bytes per frame for FRAME_FORMATS, per coded block otherwise
    bits_per_sample: int
    data_offset: int  # bytes from the start of the file to the first audio byte
    data_bytes: int | None  # as declared; None when unknown (UNKNOWN_SIZES: written while streaming)

    def frames(self, data_bytes: int) -> int | None:
        """Frames (samples per channel) in ``data_bytes`` bytes of audio; None for coded
        formats (ADPCM, GSM, ...) whose blocks hold a format-specific number of frames."""
        if self.format_tag in FRAME_FORMATS and self.block_align > 0:
            return data_bytes // self.block_align
        return None


@dataclasses.dataclass(frozen=True)
class CompleteAudio:
    """A file that passed ``check_audio_complete``: its length and layout, as libsndfile reads it."""

    frames: int  # samples per channel
    sample_rate: int
    channels: int
    format: str  # libsndfile's name: WAV, RF64, FLAC, OGG, MP3, ...

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def truncated_error(name: str, declared: int, present: int, rate: float, unit: str = "samples",
                    holder: str = "the file") -> TruncatedAudioError:
    """The one wording of truncation, for files and streams. ``declared`` and ``present``
    count ``unit`` (samples per channel, or bytes for coded WAV formats); ``rate`` is
    ``unit`` per second; ``holder`` what held ``present`` (the file, the stream)."""
    return TruncatedAudioError(
        f"{name} is truncated: its header declares {declared} {unit} ({declared / rate:.2f} s), "
        f"{holder} holds {present} ({present / rate:.2f} s)"
    )


def _read_exactly(reader: BinaryIO, count: int) -> bytes:
    """Up to ``count`` bytes, fewer only at the end of the input (a pipe's ``read`` may
    return less than asked before its end)."""
    pieces, missing = [], count
    while missing > 0:
        piece = reader.read(missing)
        if not piece:
            break
        pieces.append(piece)
        missing -= len(piece)
    return b"".join(pieces)


def _skip(reader: BinaryIO, count: int, name: str, chunk: bytes) -> None:
    if reader.seekable():
        reader.seek(count, os.SEEK_CUR)  # past the end is noticed by the next read
        return
    while count > 0:
        piece = reader.read(min(count, 1 << 16))
        if not piece:
            raise AudioError(f"{name}: the input ends inside the WAV header's {chunk.decode(errors='replace')!r} chunk")
        count -= len(piece)


def read_wav_header(reader: BinaryIO, name: str, start: bytes) -> WavHeader:
    """Parse the chunks of a WAV header up to its ``data`` chunk.

    ``start``: the first 12 bytes (``RIFF``/``RF64``/``BW64``, size, ``WAVE``), already
    read; ``reader`` stands just after them and is left at the first audio byte.
    Chunks before the data (LIST, fact, bext, JUNK, ...) are skipped with their pad byte
    (chunks have even lengths). Raises ``AudioError`` when the input ends inside the
    header or has no usable fmt chunk before the data.
    """
    wide = start[:4] in (b"RF64", b"BW64")
    ds64_data_bytes: int | None = None
    fmt: tuple[int, int, int, int, int, int] | None = None
    offset = len(start)
    while True:
        chunk = _read_exactly(reader, 8)
        if len(chunk) < 8:
            raise AudioError(f"{name}: the WAV header ends before its data chunk")
        chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        offset += 8
        if chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"{name}: the WAV header has no fmt chunk before its data")
            if wide and size == 0xFFFFFFFF:
                size = ds64_data_bytes if ds64_data_bytes is not None else size
            return WavHeader(*fmt, data_offset=offset, data_bytes=None if size in UNKNOWN_SIZES else size)
        if chunk_id in (b"fmt ", b"ds64"):
            if size > _MAX_HEADER_CHUNK:
                raise AudioError(f"{name}: the WAV header's {chunk_id.decode()!r} chunk claims {size} bytes")
            body = _read_exactly(reader, size)
            if len(body) < size:
                raise AudioError(f"{name}: the input ends inside the WAV header's {chunk_id.decode()!r} chunk")
            if chunk_id == b"ds64" and size >= 24:
                ds64_data_bytes = struct.unpack("<QQQ", body[:24])[1]
            elif chunk_id == b"fmt ":
                if size < 16:
                    raise AudioError(f"{name}: the WAV header's fmt chunk has {size} bytes, expected at least 16")
                tag, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:16])
                if tag == WAVE_FORMAT_EXTENSIBLE and size >= 40:
                    tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID starts with the tag
                fmt = (tag, channels, rate, byte_rate, block_align, bits)
        else:
            _skip(reader, size, name, chunk_id)
        if size & 1:
            _skip(reader, 1, name, chunk_id)
        offset += size + (size & 1)


def read_wav_stream_header(stream: BinaryIO, name: str) -> tuple[WavHeader | None, bytes]:
    """Read the start of a stream that may or may not be a WAV file.

    Returns ``(header, b"")`` with the stream at the first audio byte when it starts
    with a RIFF/RF64/BW64 WAVE header, else ``(None, start)`` where ``start`` holds the
    (up to 12) bytes read, which belong to the audio.
    """
    start = _read_exactly(stream, 12)
    if start[:4] in WAV_MAGICS and start[8:12] == b"WAVE":
        return read_wav_header(stream, name, start), b""
    return None, start


def _check_path(name: str) -> None:
    if os.path.isdir(name):
        raise AudioError(f"{name} is a directory, not an audio file")
    if not os.path.exists(name):
        raise AudioError(f"audio file {name} does not exist")
    if os.path.isfile(name) and os.path.getsize(name) == 0:
        raise AudioError(f"{name} is empty (0 bytes)")


def _file_wav_header(name: str) -> tuple[WavHeader | None, int]:
    """The file's WAV header (None for other formats, or a header this parser does not
    follow but libsndfile opened: it is trusted then) and the file's size in bytes."""
    with open(name, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            header, _ = read_wav_stream_header(handle, name)
        except AudioError:
            header = None
    return header, size


def _reaches(handle: sf.SoundFile, frame: int) -> bool:
    try:
        handle.seek(max(0, frame))
        return len(handle.read(1)) == 1
    except RuntimeError:  # soundfile.LibsndfileError: "flac decoder lost sync", "psf_fseek() failed"
        return False


def _decodable_frames(name: str) -> int:
    """Frames libsndfile decodes before the file ends or decoding fails (small blocks:
    what a failing block held is lost, so the count is exact to 4096 frames)."""
    count = 0
    try:
        with sf.SoundFile(name) as handle:
            while True:
                block = handle.read(4096, dtype="float32")
                if not len(block):
                    break
                count += len(block)
    except RuntimeError:
        pass
    return count


def check_audio_complete(path: str | os.PathLike) -> CompleteAudio:
    """Check that an audio file is complete, before anything decodes it.

    Raises (all ``AudioError``): the path is missing, a directory or empty (0 bytes);
    ``UndecodableAudioError`` when libsndfile cannot open it (ffmpeg may); a WAV whose
    header gives a data size of 0 and of which libsndfile reads nothing (also
    ``UndecodableAudioError``: ffmpeg reads such files); ``TruncatedAudioError`` when the
    file holds less audio than its header declares. A WAV data size of 0 or 0xFFFFFFFF
    means "unknown" (written while streaming) and is accepted, as are bytes after the
    data chunk (trailing LIST chunks). Cost: the header for WAV; one seek for FLAC and
    MP3 (a whole decode only to measure a file already found truncated).
    Returns the length and layout libsndfile reads.
    """
    name = os.fspath(path)
    _check_path(name)
    try:
        handle = sf.SoundFile(name)
    except RuntimeError as error:  # soundfile.LibsndfileError
        raise UndecodableAudioError(name, str(error)) from None
    with handle:
        found = CompleteAudio(handle.frames, handle.samplerate, handle.channels, handle.format)
        header, size = _file_wav_header(name)
        if header is not None:
            present = max(0, size - header.data_offset)
            if header.data_bytes is None:
                if found.frames == 0 and present >= max(1, header.block_align):
                    raise UndecodableAudioError(
                        name, "its WAV header gives a data size of 0, as some tools write while streaming, "
                        "and libsndfile reads no samples past it; rewrite it, e.g. ffmpeg -i IN OUT.wav")
            elif present < header.data_bytes:
                declared_frames, present_frames = header.frames(header.data_bytes), header.frames(present)
                if declared_frames is not None and present_frames is not None:
                    raise truncated_error(name, declared_frames, present_frames, header.sample_rate)
                raise truncated_error(name, header.data_bytes, present, max(1, header.byte_rate),
                                      "bytes of coded audio")
        elif found.frames > 0 and handle.seekable():
            seconds, share = _ESTIMATED_LENGTH_SLACK.get(found.format, (0.0, 0.0))
            slack = int(max(seconds * found.sample_rate, share * found.frames))
            if not _reaches(handle, found.frames - 1 - slack):
                raise truncated_error(name, found.frames, _decodable_frames(name), found.sample_rate)
    return found


def to_16k_mono(audio: np.ndarray, rate: int) -> np.ndarray:
    """Float32 mono samples at 16 kHz of ``audio`` (frames x channels or frames) sampled
    at ``rate``: channels averaged, polyphase resampling (scipy) when the rate differs."""
    from math import gcd

    from scipy.signal import resample_poly

    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != 16000:
        g = gcd(16000, rate)
        audio = resample_poly(audio, 16000 // g, rate // g)
    return np.asarray(audio, dtype=np.float32)
