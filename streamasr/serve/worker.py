"""The model worker of ``streamasr serve``: one asyncio task that runs the chunks that
are ready across all connections as one ``decode_streams`` call (up to ``max_batch``
streams, whatever their positions: the fixed-shape states are stacked and split), in a
single worker thread so that model calls never overlap.

Thread safety: only the worker touches the recognizer's streams. Connection handlers
put audio into their session's inbox (a list of float32 arrays at 16 kHz); the worker
moves it into the stream between model calls, on the event-loop thread, while no model
call is running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np
import torch

from streamasr.streaming.recognizer import ChunkOutput, StreamingRecognizer, StreamState
from streamasr.units import SAMPLE_RATE


@dataclasses.dataclass(eq=False)  # compared by identity
class Session:
    """One connection's stream and what it has sent and been sent."""

    stream: StreamState
    inbox: list = dataclasses.field(default_factory=list)  # float32 arrays not yet in the stream
    inbox_samples: int = 0
    input_done: bool = False  # "Done" received (or the connection is being drained)
    finished: bool = False  # its last chunk has run
    results: asyncio.Queue = dataclasses.field(default_factory=asyncio.Queue)
    tokens: list = dataclasses.field(default_factory=list)  # [(piece, seconds)]
    last_text: Optional[str] = None
    drained: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    recording: list = dataclasses.field(default_factory=list)  # --record-dir: the audio as received

    def buffered_seconds(self, recognizer: StreamingRecognizer) -> float:
        """Audio received but not yet decoded."""
        in_stream = self.stream.samples_received - recognizer.geometry.chunk_samples(self.stream.frames_done)
        return (self.inbox_samples + max(0, in_stream)) / SAMPLE_RATE


class BatchWorker:
    """Runs ready chunks of all sessions in batches (module docstring).

    ``on_batch(size, seconds)`` is called after every model call (for metrics)."""

    def __init__(self, recognizer: StreamingRecognizer, max_batch: int = 32,
                 on_batch: Optional[Callable[[int, float], None]] = None):
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.sessions: list[Session] = []
        self.wake = asyncio.Event()
        self.on_batch = on_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamasr-model")
        self.task: Optional[asyncio.Task] = None
        self.queue_depth = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="streamasr-batch-worker")

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    def open(self) -> Session:
        session = Session(self.recognizer.create_stream())
        self.sessions.append(session)
        return session

    def close(self, session: Session) -> None:
        """Forget a session (its connection is gone)."""
        if session in self.sessions:
            self.sessions.remove(session)

    def push(self, session: Session, samples: np.ndarray) -> None:
        if len(samples):
            session.inbox.append(samples)
            session.inbox_samples += len(samples)
            session.drained.clear()
        self.wake.set()

    def finish(self, session: Session) -> None:
        session.input_done = True
        self.wake.set()

    def _absorb(self) -> list[Session]:
        """Move inboxes into the streams; returns the sessions with a chunk ready."""
        ready = []
        for session in self.sessions:
            if session.finished:
                continue
            if session.inbox:
                audio = np.concatenate(session.inbox)
                session.inbox.clear()
                session.inbox_samples = 0
                self.recognizer.accept_waveform(session.stream, torch.from_numpy(audio))
            if session.input_done and not session.stream.input_done:
                self.recognizer.input_finished(session.stream)
            if self.recognizer.is_ready(session.stream):
                ready.append(session)
            elif session.stream.input_done:
                self._finalise(session)  # nothing left to decode
            else:
                session.drained.set()
        return ready

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ready = self._absorb()
            self.queue_depth = len(ready)
            if not ready:
                self.wake.clear()
                await self.wake.wait()
                continue
            batch = ready[: self.max_batch]
            started = time.perf_counter()
            outputs = await loop.run_in_executor(self.executor, self.recognizer.decode_streams,
                                                 [s.stream for s in batch])
            if self.on_batch:
                self.on_batch(len(batch), time.perf_counter() - started)
            for session, output in zip(batch, outputs):
                if output is not None:
                    self._deliver(session, output)

    def _deliver(self, session: Session, output: ChunkOutput) -> None:
        for event in output.tokens[0]:
            session.tokens.append((event.piece.replace("\u2581", " "), round(event.start_ms / 1000, 2)))
        if output.final or session.stream.finished:
            self._finalise(session)
            return
        if output.endpoint:  # the segment ended: its final, then a fresh segment
            session.results.put_nowait(self.result(session, output.segment_text, output.segment, final=True))
            session.tokens, session.last_text = [], None
            return
        text = session.stream.texts[0].strip()
        if text != session.last_text:
            session.last_text = text
            session.results.put_nowait(self.result(session, text, session.stream.segment, final=False))

    def _finalise(self, session: Session) -> None:
        if session.finished:
            return
        session.finished = True
        stream = session.stream
        session.results.put_nowait(self.result(session, stream.texts[0].strip(), stream.segment, final=True,
                                               eof=True))
        session.results.put_nowait(None)  # end of results
        session.drained.set()

    @staticmethod
    def result(session: Session, text: str, segment: int, final: bool, eof: bool = False) -> dict:
        """sherpa-onnx's result message: the segment's text so far, its tokens and their
        start times (seconds from the stream start), the segment's number, whether it is
        the segment's final result and whether it is the stream's last."""
        return {"text": text, "tokens": [p for p, _ in session.tokens],
                "timestamps": [t for _, t in session.tokens], "segment": segment, "is_final": final, "is_eof": eof}


__all__ = ["BatchWorker", "Session"]
