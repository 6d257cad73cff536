"""Audio sources for live transcription: files (libsndfile: wav, flac, ogg, mp3; other
formats and URLs through an ffmpeg subprocess), raw 16-bit PCM or a WAV stream on stdin,
microphones (``sounddevice``). Every source yields fixed-size float32 mono blocks at
16 kHz, resampled and downmixed on the fly (with a notice on stderr), so memory stays
flat for hours-long input.

Files are checked before the first block is decoded (``check_audio_complete``): a file
cut short would otherwise transcribe its first half with no sign of the loss.
"""

from __future__ import annotations

import dataclasses
import numbers
import queue
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

import numpy as np
import soundfile

from streamasr.data.audio import (
    WAVE_FORMAT_IEEE_FLOAT,
    WAVE_FORMAT_PCM,
    check_audio_complete,
    read_wav_stream_header,
    truncated_error,
)
from streamasr.errors import AudioError, ConfigError, UndecodableAudioError
from streamasr.live.resample import StreamingResampler
from streamasr.units import SAMPLE_RATE

BLOCK_SECONDS = 0.2  # what sources read at a time


def notice(message: str) -> None:
    print(f"streamasr: {message}", file=sys.stderr, flush=True)


def check_layout(name: str, sample_rate: int, channels: int) -> None:
    """Refuse a rate or channel count that cannot describe audio, before a source is
    read: a rate of 0 divides by zero in the resampler, 0 channels reads nothing."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise ConfigError(f"{name}: the sample rate must be a whole number of Hz above 0, got {sample_rate!r}")
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels <= 0:
        raise ConfigError(f"{name}: the channel count must be a whole number above 0, got {channels!r}")


@dataclasses.dataclass
class SourceInfo:
    name: str
    sample_rate: int
    channels: int
    kind: str  # file | ffmpeg | stdin | microphone


class AudioSource:
    """Yields float32 mono blocks at 16 kHz (resampled / downmixed on the fly)."""

    info: SourceInfo

    def raw_blocks(self) -> Iterator[np.ndarray]:  # [n, channels] float32 at info.sample_rate
        raise NotImplementedError

    def blocks(self) -> Iterator[np.ndarray]:
        info = self.info
        if info.channels > 1:
            notice(f"{info.name}: {info.channels} channels, downmixed to mono")
        if info.sample_rate != SAMPLE_RATE:
            notice(f"{info.name}: {info.sample_rate} Hz, resampled to {SAMPLE_RATE} Hz")
        resampler = StreamingResampler(info.sample_rate, SAMPLE_RATE)
        for block in self.raw_blocks():
            mono = block.mean(axis=1) if block.ndim == 2 else block
            out = resampler.process(mono)
            if len(out):
                yield out
        tail = resampler.process(np.zeros(0, np.float32), final=True)
        if len(tail):
            yield tail


class SoundFileSource(AudioSource):
    """wav / flac / ogg / mp3 (libsndfile), read block by block."""

    def __init__(self, path: str):
        self.path = path
        # Missing, a directory, empty, undecodable (UndecodableAudioError) or truncated:
        # named here, before any block is decoded.
        audio = check_audio_complete(path)
        if audio.frames == 0:
            raise AudioError(f"{path}: the file holds no audio samples (zero length)")
        self.info = SourceInfo(path, audio.sample_rate, audio.channels, "file")

    def raw_blocks(self) -> Iterator[np.ndarray]:
        block = max(1, int(BLOCK_SECONDS * self.info.sample_rate))
        try:
            with soundfile.SoundFile(self.path) as handle:
                while True:
                    data = handle.read(block, dtype="float32", always_2d=True)
                    if not len(data):
                        return
                    yield data
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise AudioError(f"{self.path}: audio is corrupt or truncated ({error})") from None


@dataclasses.dataclass(frozen=True)
class PcmFormat:
    """How the samples of a headerless stream are stored (little-endian, interleaved)."""

    name: str
    sample_bytes: int
    decode: Callable[[bytes], np.ndarray]  # bytes -> float32 in [-1, 1)


def _unsigned8(data: bytes) -> np.ndarray:
    return (np.frombuffer(data, np.uint8).astype(np.float32) - 128.0) / 128.0


def _signed16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def _signed24(data: bytes) -> np.ndarray:
    triples = np.frombuffer(data, np.uint8).reshape(-1, 3).astype(np.int32)
    values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
    return (np.where(values >= 1 << 23, values - (1 << 24), values) / float(1 << 23)).astype(np.float32)


def _signed32(data: bytes) -> np.ndarray:
    return (np.frombuffer(data, "<i4") / 2.0**31).astype(np.float32)


def _float32(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<f4").astype(np.float32)


def _float64(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<f8").astype(np.float32)


S16LE = PcmFormat("16-bit PCM", 2, _signed16)
# What a WAV stream on stdin may hold, by (format tag, bits per sample).
WAV_STREAM_FORMATS = {
    (WAVE_FORMAT_PCM, 8): PcmFormat("8-bit PCM", 1, _unsigned8),
    (WAVE_FORMAT_PCM, 16): S16LE,
    (WAVE_FORMAT_PCM, 24): PcmFormat("24-bit PCM", 3, _signed24),
    (WAVE_FORMAT_PCM, 32): PcmFormat("32-bit PCM", 4, _signed32),
    (WAVE_FORMAT_IEEE_FLOAT, 32): PcmFormat("32-bit float", 4, _float32),
    (WAVE_FORMAT_IEEE_FLOAT, 64): PcmFormat("64-bit float", 8, _float64),
}


class PcmStreamSource(AudioSource):
    """Headerless PCM from a binary stream (stdin or a pipe): signed 16-bit little-endian
    unless ``sample_format`` says otherwise.

    head: bytes already read from the stream that belong to the audio (what
    ``open_stdin`` read to look for a WAV header). data_bytes: the audio's length when
    a WAV header declared it: reading stops there (chunks after the data are not audio),
    and a stream that ends before it raises ``TruncatedAudioError`` after its blocks.
    """

    def __init__(self, stream: BinaryIO, sample_rate: int = SAMPLE_RATE, channels: int = 1, name: str = "stdin",
                 kind: str = "stdin", sample_format: PcmFormat = S16LE, head: bytes = b"",
                 data_bytes: int | None = None):
        check_layout(name, sample_rate, channels)
        self.stream = stream
        self.info = SourceInfo(name, sample_rate, channels, kind)
        self.sample_format = sample_format
        self.head = head
        self.data_bytes = data_bytes

    def raw_blocks(self) -> Iterator[np.ndarray]:
        channels = self.info.channels
        frame_bytes = self.sample_format.sample_bytes * channels
        block_bytes = max(1, int(BLOCK_SECONDS * self.info.sample_rate)) * frame_bytes
        pending, received = self.head, len(self.head)
        while True:
            wanted = block_bytes if self.data_bytes is None else min(block_bytes, self.data_bytes - received)
            data = self.stream.read(wanted) if wanted > 0 else b""
            received += len(data)
            pending += data
            usable = len(pending) - len(pending) % frame_bytes  # a trailing partial frame is dropped
            if usable:
                yield self.sample_format.decode(pending[:usable]).reshape(-1, channels)
                pending = pending[usable:]
            if not data:
                break
        if self.data_bytes is not None and received < self.data_bytes:
            raise truncated_error(self.info.name, self.data_bytes // frame_bytes, received // frame_bytes,
                                  self.info.sample_rate, holder="the stream")


def open_stdin(stream: BinaryIO, sample_rate: int = SAMPLE_RATE, channels: int = 1,
               name: str = "stdin") -> PcmStreamSource:
    """Raw PCM (``sample_rate``, ``channels``, 16-bit), or a WAV stream.

    A WAV file piped in (``cat a.wav | streamasr transcribe -``, ``ffmpeg ... -f wav -``)
    starts with a RIFF/WAVE header: its header is read and followed (rate, channels,
    8/16/24/32-bit PCM or 32/64-bit float, the declared length), instead of its header
    bytes being decoded as samples and the audio as the wrong format.
    """
    check_layout(name, sample_rate, channels)
    header, start = read_wav_stream_header(stream, name)
    if header is None:
        return PcmStreamSource(stream, sample_rate, channels, name, head=start)
    sample_format = WAV_STREAM_FORMATS.get((header.format_tag, header.bits_per_sample))
    if sample_format is None:
        raise AudioError(
            f"{name}: a WAV stream of format tag {header.format_tag} with {header.bits_per_sample}-bit samples; "
            "from a stream transcribe reads 8/16/24/32-bit PCM or 32/64-bit float WAV: pass the file name instead")
    if header.block_align != sample_format.sample_bytes * header.channels:
        raise AudioError(f"{name}: the WAV header's block size {header.block_align} does not fit "
                         f"{header.channels} channel(s) of {sample_format.name}")
    if (header.sample_rate, header.channels) != (sample_rate, channels):
        notice(f"{name}: a WAV stream of {header.sample_rate} Hz and {header.channels} channel(s); its header, "
               f"not the raw-PCM format ({sample_rate} Hz, {channels} channel(s)), says how to read it")
    return PcmStreamSource(stream, header.sample_rate, header.channels, name, sample_format=sample_format,
                           data_bytes=header.data_bytes)


class FfmpegSource(PcmStreamSource):
    """Anything ffmpeg opens (other formats, http/rtsp/... URLs), decoded to 16 kHz
    mono PCM by an ffmpeg subprocess and read incrementally from its stdout."""

    def __init__(self, url: str):
        if shutil.which("ffmpeg") is None:
            raise AudioError(f"{url}: needs ffmpeg (not installed): apt install ffmpeg")
        self.url = url
        self.process = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", url, "-vn", "-f", "s16le",
             "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        super().__init__(self.process.stdout, SAMPLE_RATE, 1, url, "ffmpeg")

    def raw_blocks(self) -> Iterator[np.ndarray]:
        produced = False
        for block in super().raw_blocks():
            produced = True
            yield block
        code = self.process.wait()
        if code != 0 or not produced:
            message = self.process.stderr.read().decode(errors="replace").strip().splitlines()
            reason = message[-1] if message else f"ffmpeg exited with {code}"
            raise AudioError(f"{self.url}: ffmpeg could not decode it ({reason})")


class MicrophoneSource(AudioSource):
    """The default (or a named) input device via ``sounddevice``."""

    def __init__(self, device=None, sample_rate: int = SAMPLE_RATE):
        check_layout(f"microphone {device or '(default)'}", sample_rate, 1)
        try:
            import sounddevice
        except ImportError:
            raise AudioError("microphone input needs the sounddevice package: pip install sounddevice") from None
        self.sounddevice = sounddevice
        self.device = device
        self.info = SourceInfo(f"microphone {device or '(default)'}", sample_rate, 1, "microphone")

    def raw_blocks(self) -> Iterator[np.ndarray]:
        blocks: queue.Queue = queue.Queue()
        block = int(BLOCK_SECONDS * self.info.sample_rate)

        def callback(indata, frames, time_info, status):
            if status:
                notice(f"microphone: {status}")
            blocks.put(indata.copy())

        with self.sounddevice.InputStream(samplerate=self.info.sample_rate, channels=1, dtype="float32",
                                          blocksize=block, device=self.device, callback=callback):
            notice("listening; Ctrl-C to stop")
            try:
                while True:
                    yield blocks.get()
            except KeyboardInterrupt:
                return


def open_source(spec: str, pcm_rate: int = SAMPLE_RATE, pcm_channels: int = 1) -> AudioSource:
    """``-`` = stdin (raw PCM of ``pcm_rate`` Hz and ``pcm_channels``, or a WAV stream,
    see ``open_stdin``); ``mic`` / ``mic:<device>`` = microphone; a URL (``scheme://``) =
    ffmpeg; a file = soundfile, or ffmpeg when libsndfile cannot decode it and ffmpeg is
    installed (never for a file that is missing, empty or truncated: ffmpeg would
    decode the part that is there)."""
    if spec == "-":
        return open_stdin(sys.stdin.buffer, pcm_rate, pcm_channels)
    if spec == "mic" or spec.startswith("mic:"):
        device = spec.split(":", 1)[1] if ":" in spec else None
        return MicrophoneSource(int(device) if device and device.isdigit() else device)
    if "://" in spec and not spec.startswith("file://"):
        return FfmpegSource(spec)
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    try:
        return SoundFileSource(path)
    except UndecodableAudioError:
        if shutil.which("ffmpeg") is None:
            raise
        return FfmpegSource(path)
