"""Live transcription: audio sources, a thread-safe push/pull transcriber, and events.

Owns: reading audio incrementally from files (soundfile: wav, flac, ogg, mp3; anything
else and URLs through ffmpeg), raw 16-bit PCM on stdin and microphones (sounddevice);
resampling and downmixing on the fly; the producer/consumer ``Transcriber`` (push
samples from any thread, read ``Event`` objects out); the JSON-lines event format.

Memory stays flat for hours-long input: sources yield fixed-size blocks, the resampler
keeps a few hundred samples of context, and the recogniser drops audio no future chunk
reads (``StreamingRecognizer``). With unlimited left context the encoder's attention
cache grows with the stream; use a finite ``left_chunks`` for endless streams.
"""

from __future__ import annotations

import dataclasses
import json
import math
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

TARGET_RATE = 16000
BLOCK_SECONDS = 0.2  # what sources read at a time


class AudioError(RuntimeError):
    """An audio source cannot be opened or decoded."""


class BufferFull(RuntimeError):
    """``Transcriber.push`` on a full buffer with ``on_full="raise"``."""


def notice(message: str) -> None:
    print(f"streamasr: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ resampling
class StreamingResampler:
    """Band-limited resampling of a stream, block by block, equal (to ~1e-6) to
    resampling the whole signal at once with ``torchaudio.functional.resample``.

    Works in units of ``orig / gcd`` input samples (which map to ``new / gcd`` output
    samples exactly): each call resamples the new whole units plus ``context`` units on
    both sides and keeps the interior, so the filter never sees a block edge.
    """

    def __init__(self, orig_rate: int, new_rate: int, context_units: Optional[int] = None):
        self.orig, self.new = int(orig_rate), int(new_rate)
        divisor = math.gcd(self.orig, self.new)
        self.in_unit, self.out_unit = self.orig // divisor, self.new // divisor
        # torchaudio's sinc filter spans ~6 zero crossings of the lower rate on each side.
        reach = math.ceil(6 * self.orig / min(self.orig, self.new)) + 1
        self.context = context_units or max(1, math.ceil(reach / self.in_unit))
        self.pending = np.zeros(0, dtype=np.float32)  # input not yet resampled
        self.history = np.zeros(self.context * self.in_unit, dtype=np.float32)  # zeros = signal start
        self.started = False

    def _run(self, signal: np.ndarray) -> np.ndarray:
        import torchaudio.functional as F

        tensor = torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32))
        return F.resample(tensor, self.orig, self.new).numpy()

    def process(self, block: np.ndarray, final: bool = False) -> np.ndarray:
        if self.orig == self.new:
            return block.astype(np.float32, copy=False)
        self.pending = np.concatenate([self.pending, block.astype(np.float32, copy=False)])
        ctx = self.context * self.in_unit
        if final:
            units = math.ceil(len(self.pending) / self.in_unit)
            if units == 0:
                return np.zeros(0, dtype=np.float32)
            total_in = len(self.pending)
            padded = np.concatenate([self.pending, np.zeros(units * self.in_unit - total_in + ctx, np.float32)])
            window = np.concatenate([self.history, padded])
            out = self._run(window)[self.context * self.out_unit: (self.context + units) * self.out_unit]
            self.pending = np.zeros(0, dtype=np.float32)
            keep = math.ceil(total_in * self.new / self.orig)
            return out[:keep]
        # Whole units that have their right context available.
        units = len(self.pending) // self.in_unit - self.context
        if units <= 0:
            return np.zeros(0, dtype=np.float32)
        window = np.concatenate([self.history, self.pending[: (units + self.context) * self.in_unit]])
        out = self._run(window)[self.context * self.out_unit: (self.context + units) * self.out_unit]
        consumed = units * self.in_unit
        self.history = np.concatenate([self.history, self.pending[:consumed]])[-ctx:]
        self.pending = self.pending[consumed:]
        return out


def resample_whole(signal: np.ndarray, orig: int, new: int) -> np.ndarray:
    import torchaudio.functional as F

    if orig == new:
        return signal
    return F.resample(torch.from_numpy(signal.astype(np.float32)), orig, new).numpy()


# ------------------------------------------------------------------ sources
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
        if info.sample_rate != TARGET_RATE:
            notice(f"{info.name}: {info.sample_rate} Hz, resampled to {TARGET_RATE} Hz")
        resampler = StreamingResampler(info.sample_rate, TARGET_RATE)
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
        import soundfile

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

    def raw_blocks(self):
        import soundfile

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

    def __init__(self, stream, sample_rate: int = TARGET_RATE, channels: int = 1, name: str = "stdin",
                 kind: str = "stdin"):
        self.stream = stream
        self.info = SourceInfo(name, sample_rate, channels, kind)

    def raw_blocks(self):
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
             "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(TARGET_RATE), "-"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        super().__init__(self.process.stdout, TARGET_RATE, 1, url, "ffmpeg")

    def raw_blocks(self):
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

    def __init__(self, device=None, sample_rate: int = TARGET_RATE):
        try:
            import sounddevice
        except ImportError:
            raise AudioError("microphone input needs the sounddevice package: pip install sounddevice") from None
        self.sounddevice = sounddevice
        self.device = device
        self.info = SourceInfo(f"microphone {device or '(default)'}", sample_rate, 1, "microphone")

    def raw_blocks(self):
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


def open_source(spec: str, pcm_rate: int = TARGET_RATE, pcm_channels: int = 1) -> AudioSource:
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


# ------------------------------------------------------------------ events
@dataclasses.dataclass
class Event:
    """One transcription event. ``kind`` is ``partial`` (new text of a chunk) or
    ``final`` (the whole transcript at end of input)."""

    kind: str
    text: str
    chunk: int = -1
    audio_ms: float = 0.0  # audio consumed by the recogniser when the event was made
    compute_ms: float = 0.0  # compute time of this chunk (partial) / of all chunks (final)
    tokens: list = dataclasses.field(default_factory=list)  # [{token, piece, start_ms, confidence}]
    rtf: Optional[float] = None  # final only: compute time / audio duration

    def to_json(self) -> str:
        record = {"type": self.kind, "text": self.text}
        if self.kind == "partial":
            record.update(chunk=self.chunk, audio_ms=round(self.audio_ms, 1),
                          compute_ms=round(self.compute_ms, 2), tokens=self.tokens)
        else:
            record.update(audio_ms=round(self.audio_ms, 1), compute_ms=round(self.compute_ms, 1),
                          rtf=None if self.rtf is None else round(self.rtf, 4))
        return json.dumps(record, ensure_ascii=False)


# ------------------------------------------------------------------ transcriber
_END = object()


class Transcriber:
    """Push audio in, read events out; recognition runs on a worker thread.

    ``push(samples)`` takes 16 kHz mono float samples (any length) from any thread;
    the buffer holds at most ``max_buffer_seconds`` of audio not yet recognised, and a
    push that would overflow it blocks until there is room (``on_full="block"``,
    optionally with ``timeout``) or raises ``BufferFull`` (``on_full="raise"``):
    audio is never dropped silently. ``close()`` ends the input; ``events()`` yields
    ``Event`` objects until the final one. Errors in the worker are re-raised by
    ``events()``.
    """

    def __init__(self, model, chunk_ms: float = 640, left_chunks: Optional[int] = 4,
                 max_buffer_seconds: float = 30.0, on_full: str = "block", frontend: str = "exact"):
        from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

        from streamasr.streaming import StreamingRecognizer

        if on_full not in ("block", "raise"):
            raise ValueError(f"on_full must be 'block' or 'raise', got {on_full!r}")
        if max_buffer_seconds <= 0:
            raise ValueError(f"max_buffer_seconds must be > 0, got {max_buffer_seconds}")
        if left_chunks is not None and left_chunks < 0:
            raise ValueError(f"left_chunks must be >= 0 or None (unlimited), got {left_chunks}")
        geometry = model.front_end.geometry
        frames = geometry.frames_from_ms(chunk_ms)
        self.model = model
        self.recognizer = StreamingRecognizer(model, DynChunkTrainConfig(frames, left_chunks), frontend)
        self.capacity = int(max_buffer_seconds * TARGET_RATE)
        self.on_full = on_full
        self._audio: "queue.Queue" = queue.Queue()
        self._events: "queue.Queue" = queue.Queue()
        self._room = threading.Condition()
        self._buffered = 0
        self._closed = False
        self._error: Optional[BaseException] = None
        self._worker = threading.Thread(target=self._run, name="streamasr-transcriber", daemon=True)
        self._worker.start()

    # producer side
    def push(self, samples, timeout: Optional[float] = None) -> None:
        block = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1)
        if self._closed:
            raise RuntimeError("push after close()")
        if len(block) > self.capacity:
            raise ValueError(f"a push of {len(block)} samples exceeds the buffer ({self.capacity} samples)")
        with self._room:
            if self._buffered + len(block) > self.capacity:
                if self.on_full == "raise":
                    raise BufferFull(
                        f"buffer full: {self._buffered} of {self.capacity} samples pending, "
                        f"{len(block)} more pushed"
                    )
                if not self._room.wait_for(lambda: self._buffered + len(block) <= self.capacity
                                           or self._error is not None, timeout=timeout):
                    raise BufferFull(f"buffer still full after {timeout} s")
            self._buffered += len(block)
        self._audio.put(block)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._audio.put(_END)

    # consumer side
    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        while True:
            item = self._events.get(timeout=timeout)
            if isinstance(item, BaseException):
                self._worker.join()
                raise item
            if item.kind == "final":
                self._worker.join()  # no thread left running inside torch at exit
                yield item
                return
            yield item

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # worker
    def _run(self) -> None:
        recognizer = self.recognizer
        state = recognizer.init_state(1)
        compute = 0.0
        samples = 0
        try:
            while True:
                block = self._audio.get()
                if block is _END:
                    outputs = recognizer.finalize(state)
                else:
                    with self._room:
                        self._buffered -= len(block)
                        self._room.notify_all()
                    samples += len(block)
                    outputs = recognizer.accept_audio(state, block[None])
                for output in outputs:
                    compute += output.compute_seconds
                    tokens = [
                        {"token": e.token_id, "piece": e.piece, "start_ms": round(e.start_ms, 1),
                         "confidence": round(e.confidence, 4)}
                        for e in output.tokens[0]
                    ]
                    self._events.put(Event(
                        "partial", output.text[0], output.chunk_index,
                        min(samples, output.end_frame * recognizer.geometry.frame_samples) * 1000 / TARGET_RATE,
                        output.compute_seconds * 1000, tokens,
                    ))
                if block is _END:
                    audio_ms = samples * 1000 / TARGET_RATE
                    self._events.put(Event(
                        "final", state.texts[0].strip(), state.chunks_done, audio_ms, compute * 1000,
                        rtf=compute / (audio_ms / 1000) if samples else None,
                    ))
                    return
        except BaseException as error:  # surfaced to the consumer
            self._error = error
            with self._room:
                self._room.notify_all()
            self._events.put(error)


def transcribe_source(model, source: AudioSource, chunk_ms: float = 640, left_chunks: Optional[int] = 4,
                      frontend: str = "exact", max_buffer_seconds: float = 30.0) -> Iterator[Event]:
    """Events for a whole source: a reader thread pushes (blocking when the buffer is
    full, so a fast file never outruns recognition), this generator yields events."""
    transcriber = Transcriber(model, chunk_ms, left_chunks, max_buffer_seconds, "block", frontend)
    failure: list = []

    def produce():
        try:
            for block in source.blocks():
                transcriber.push(block)
        except BaseException as error:  # reported after the events so far
            failure.append(error)
        finally:
            transcriber.close()

    reader = threading.Thread(target=produce, name="streamasr-reader", daemon=True)
    reader.start()
    try:
        for event in transcriber.events():
            if event.kind == "final" and failure:
                raise failure[0]
            yield event
    except Exception:
        reader.join(timeout=5)
        if failure:  # the source's error is the cause; report it, not its aftermath
            raise failure[0] from None
        raise
    reader.join()
    if failure:
        raise failure[0]
