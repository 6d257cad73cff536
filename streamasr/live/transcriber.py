"""The producer/consumer ``Transcriber`` (push samples from any thread, read ``Event``
objects out; recognition on a worker thread) and ``transcribe_source`` (a whole source).

Memory stays flat for hours-long input: the recogniser drops audio no future chunk
reads (``StreamingRecognizer``). With unlimited left context the encoder's attention
cache grows with the stream; use a finite ``left_chunks`` for endless streams.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, Optional

import numpy as np
import torch

from streamasr.engine import EngineSpec, build_recognizer
from streamasr.errors import BufferFull, ConfigError, StreamStateError
from streamasr.live.events import Event
from streamasr.live.sources import AudioSource
from streamasr.model import AsrModel
from streamasr.units import SAMPLE_RATE

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

    def __init__(self, model: AsrModel, spec: Optional[EngineSpec] = None, max_buffer_seconds: float = 30.0,
                 on_full: str = "block"):
        """``spec``: the engine (cell, front end, backend, decoding, endpointing;
        ``streamasr.engine``); default: the model's own cell, greedy, exact front end."""
        if on_full not in ("block", "raise"):
            raise ConfigError(f"on_full must be 'block' or 'raise', got {on_full!r}")
        if max_buffer_seconds <= 0:
            raise ConfigError(f"max_buffer_seconds must be > 0, got {max_buffer_seconds}")
        spec = spec or EngineSpec()
        if spec.cell is not None and spec.cell.left_chunks is not None and spec.cell.left_chunks < 0:
            raise ConfigError(f"left_chunks must be >= 0 or None (unlimited), got {spec.cell.left_chunks}")
        self.model = model
        self.recognizer = build_recognizer(model, spec)
        self.capacity = int(max_buffer_seconds * SAMPLE_RATE)
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
    def push(self, samples: np.ndarray | torch.Tensor | list[float], timeout: Optional[float] = None) -> None:
        block = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1)
        if self._closed:
            raise StreamStateError("push after close()")
        if len(block) > self.capacity:
            raise ConfigError(f"a push of {len(block)} samples exceeds the buffer ({self.capacity} samples)")
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
                        for e in output.tokens
                    ]
                    audio_ms = min(samples, output.end_frame * recognizer.geometry.frame_samples) * 1000 / SAMPLE_RATE
                    self._events.put(Event(
                        "partial", output.text, output.chunk_index, audio_ms,
                        output.compute_seconds * 1000, tokens, segment=output.segment,
                    ))
                    if output.endpoint:
                        self._events.put(Event("segment", output.segment_text, output.chunk_index, audio_ms,
                                               segment=output.segment, rule=output.endpoint))
                if block is _END:
                    audio_ms = samples * 1000 / SAMPLE_RATE
                    nbest = [{"text": recognizer.model.decode_tokens(tokens), "score": round(score, 4)}
                             for tokens, score in state.result.nbest]
                    self._events.put(Event(
                        "final", state.result.full_text, state.chunks_done, audio_ms, compute * 1000,
                        rtf=compute / (audio_ms / 1000) if samples else None, segment=state.result.segment,
                        nbest=nbest if recognizer.nbest > 1 else [],
                    ))
                    return
        except BaseException as error:  # surfaced to the consumer
            self._error = error
            with self._room:
                self._room.notify_all()
            self._events.put(error)


def transcribe_source(model: AsrModel, source: AudioSource, spec: Optional[EngineSpec] = None,
                      max_buffer_seconds: float = 30.0) -> Iterator[Event]:
    """Events for a whole source: a reader thread pushes (blocking when the buffer is
    full, so a fast file never outruns recognition), this generator yields events.
    ``spec``: the engine (``streamasr.engine.EngineSpec``; its decoding's ``nbest``
    hypotheses go into the final event)."""
    transcriber = Transcriber(model, spec, max_buffer_seconds, "block")
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


def transcribe_file(path: str, model: AsrModel, spec: Optional[EngineSpec] = None) -> str:
    """The final transcript of an audio file (any format ``open_source`` reads), streamed
    chunk by chunk as ``streamasr transcribe`` does."""
    from streamasr.live.sources import open_source

    text = ""
    for event in transcribe_source(model, open_source(str(path)), spec):
        if event.kind == "final":
            text = event.text
    return text
