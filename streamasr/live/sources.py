"""Audio sources for live transcription: files (libsndfile: wav, flac, ogg, mp3; other
formats and URLs through an ffmpeg subprocess), raw 16-bit PCM on stdin, microphones
(``sounddevice``). Every source yields fixed-size float32 mono blocks at 16 kHz,
resampled and downmixed on the fly (with a notice on stderr), so memory stays flat for
hours-long input.
"""

from __future__ import annotations

import dataclasses
import queue
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile

from streamasr.errors import AudioError
from streamasr.live.resample import StreamingResampler
from streamasr.units import SAMPLE_RATE

BLOCK_SECONDS = 0.2  # what sources read at a time


def notice(message: str) -> None:
    print(f"streamasr: {message}", file=sys.stderr, flush=True)


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
        if not Path(path).is_file():
            raise AudioError(f"audio file {path} does not exist")
        try:
            with soundfile.SoundFile(path) as handle:
                self.info = SourceInfo(path, handle.samplerate, handle.channels, "file")
                frames = handle.frames
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise AudioError(f"{path}: cannot decode audio ({error})") from None
        if frames == 0:
            raise AudioError(f"{path}: the file holds no audio samples (zero length)")

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


class PcmStreamSource(AudioSource):
    """Raw signed 16-bit little-endian PCM from a binary stream (stdin or a pipe)."""

    def __init__(self, stream, sample_rate: int = SAMPLE_RATE, channels: int = 1, name: str = "stdin",
                 kind: str = "stdin"):
        self.stream = stream
        self.info = SourceInfo(name, sample_rate, channels, kind)

    def raw_blocks(self) -> Iterator[np.ndarray]:
        frame_bytes = 2 * self.info.channels
        block_bytes = max(1, int(BLOCK_SECONDS * self.info.sample_rate)) * frame_bytes
        leftover = b""
        while True:
            data = self.stream.read(block_bytes)
            if not data:
                break
            data = leftover + data
            usable = len(data) - len(data) % frame_bytes
            leftover = data[usable:]
            if usable:
                samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
                yield samples.reshape(-1, self.info.channels)


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
    """``-`` = raw PCM on stdin; ``mic`` / ``mic:<device>`` = microphone; a URL
    (``scheme://``) = ffmpeg; a file = soundfile, or ffmpeg when libsndfile cannot
    decode it and ffmpeg is installed."""
    if spec == "-":
        return PcmStreamSource(sys.stdin.buffer, pcm_rate, pcm_channels)
    if spec == "mic" or spec.startswith("mic:"):
        device = spec.split(":", 1)[1] if ":" in spec else None
        return MicrophoneSource(int(device) if device and device.isdigit() else device)
    if "://" in spec and not spec.startswith("file://"):
        return FfmpegSource(spec)
    path = spec[len("file://"):] if spec.startswith("file://") else spec
    try:
        return SoundFileSource(path)
    except AudioError as error:
        if "does not exist" in str(error) or "zero length" in str(error) or shutil.which("ffmpeg") is None:
            raise
        return FfmpegSource(path)
