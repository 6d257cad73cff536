"""The model worker of ``streamasr serve``: one asyncio task that runs the chunks that
are ready across all connections as batched ``decode_streams`` calls (up to
``max_batch`` streams each, whatever their positions: the fixed-shape states are
stacked and split) on ``workers`` model threads.

Why more than one model thread: onnxruntime and torch release the GIL while they
compute, so two threads that each run a batch on one core keep both cores busy, where
one thread with a two-thread encoder leaves the cores idle during its Python parts
(feature windows, the greedy search's bookkeeping). On the 2-core test machine, 64
streams at 640 ms took 5.3 ms of wall time per stream-chunk with one thread (encoder on
2 threads) and 3.1 ms with two (one each), timing ``decode_streams`` alone; end to end,
``benchmarks/serve_load.py --workers 1|2``.

Thread safety: a session belongs to at most one batch in flight, and only the thread
running that batch touches its stream. Connection handlers put audio into their
session's inbox (a list of float32 arrays at 16 kHz); the worker moves it into the
stream on the event-loop thread while the session is not in flight. The recognizer's
modules are read-only at inference, so concurrent batches of different streams share
them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import numpy as np
import torch

from streamasr.streaming.recognizer import ChunkOutput, StreamingRecognizer, StreamState
from streamasr.units import SAMPLE_RATE

log = logging.getLogger(__name__)


class ModelFailure(str):
    """Put in a session's result queue when its batch raised: the connection closes with
    code 1011 and this reason (the server and the other streams go on)."""


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
    busy: bool = False  # in a batch that a model thread is running
    closed: bool = False  # its connection is gone (``BatchWorker.close``)
    recording: list = dataclasses.field(default_factory=list)  # --record-dir: the audio as received

    def buffered_seconds(self, recognizer: StreamingRecognizer) -> float:
        """Audio received but not yet decoded."""
        in_stream = self.stream.samples_received - recognizer.geometry.chunk_samples(self.stream.frames_done)
        return (self.inbox_samples + max(0, in_stream)) / SAMPLE_RATE


class BatchWorker:
    """Runs ready chunks of all sessions in batches (module docstring).

    ``on_batch(size, seconds)`` is called after every model call (for metrics).
    The ready sessions are shared evenly among the free model threads (lower latency
    than filling one batch while another thread idles)."""

    def __init__(self, recognizer: StreamingRecognizer, max_batch: int = 32,
                 on_batch: Optional[Callable[[int, float], None]] = None, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.workers = workers
        self.sessions: list[Session] = []
        self.wake = asyncio.Event()
        self.on_batch = on_batch
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="streamasr-model")
        self.task: Optional[asyncio.Task] = None
        self.in_flight: set[asyncio.Task] = set()
        self.pending: OrderedDict[Session, None] = OrderedDict()  # a chunk ready, not yet in a batch
        self.dirty: dict[Session, None] = {}  # news since the last look (``_touch``)
        self.queue_depth = 0

    async def warm_up(self, seconds: float = 2.0) -> None:
        """Run every batch size from 1 to ``max_batch`` once on each model thread, all
        threads at once, before the first client: onnxruntime keeps a memory plan per
        input shape and its arena grows to the largest concurrent need, so without this
        the server's memory rises over its first thousands of connections as new batch
        sizes and mixes of sizes appear; with it (and ``_shared_cpu_arena``) the large
        anonymous mappings stay within a few MB over a soak (recipes/Synthetic/RESULTS.md, serve soak). About two
        seconds per thread."""
        generator = torch.Generator().manual_seed(0)
        samples = int(seconds * SAMPLE_RATE)
        audio = [torch.randn(samples, generator=generator) * 0.05 for _ in range(self.max_batch)]

        def run(sizes: list[int]) -> None:
            for size in sizes:
                streams = [self.recognizer.create_stream() for _ in range(size)]
                for stream, wave in zip(streams, audio):
                    self.recognizer.accept_waveform(stream, wave)
                self.recognizer.decode_streams(streams)

        loop = asyncio.get_running_loop()
        # largest first (smaller plans reuse its memory), then every size again in an order
        # of its own per thread: the arena's blocks reach the layout that mixed concurrent
        # sizes leave behind (measured: without this round, +61 MB over a soak's first
        # 500 connections; with it, +3 MB)
        descending = list(range(self.max_batch, 0, -1))
        shuffler = random.Random(0)
        plans = [descending + shuffler.sample(descending, len(descending)) for _ in range(self.workers)]
        await asyncio.gather(*(loop.run_in_executor(self.executor, run, sizes) for sizes in plans))

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="streamasr-batch-worker")

    async def stop(self) -> None:
        for task in [self.task, *self.in_flight]:
            if task:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self.executor.shutdown(wait=True)

    def open(self) -> Session:
        session = Session(self.recognizer.create_stream())
        self.sessions.append(session)
        return session

    def close(self, session: Session) -> None:
        """Forget a session (its connection is gone; a batch it is in finishes unheeded)."""
        session.closed = True
        if session in self.sessions:
            self.sessions.remove(session)
        self.pending.pop(session, None)
        self.dirty.pop(session, None)

    def push(self, session: Session, samples: np.ndarray) -> None:
        if len(samples):
            session.inbox.append(samples)
            session.inbox_samples += len(samples)
            session.drained.clear()
        self._touch(session)

    def finish(self, session: Session) -> None:
        session.input_done = True
        self._touch(session)

    def _touch(self, session: Session) -> None:
        """``session`` has news (audio, ``Done``, a finished batch): look at it again."""
        self.dirty[session] = None
        self.wake.set()

    def _absorb(self) -> None:
        """Move the inboxes of the sessions with news into their streams; those with a
        chunk ready join ``pending`` (first ready, first served). Only sessions with news
        are looked at: with hundreds of streams, each message would otherwise cost a
        pass over all of them."""
        dirty, self.dirty = self.dirty, {}
        for session in dirty:
            if session.finished or session.busy or session.closed:
                continue  # a busy session is looked at again when its batch returns
            if session.inbox:
                audio = np.concatenate(session.inbox)
                session.inbox.clear()
                session.inbox_samples = 0
                self.recognizer.accept_waveform(session.stream, torch.from_numpy(audio))
            if session.input_done and not session.stream.input_done:
                self.recognizer.input_finished(session.stream)
            if self.recognizer.is_ready(session.stream):
                self.pending[session] = None
            elif session.stream.input_done:  # nothing left to decode
                output = self.recognizer.finish_stream(session.stream)  # a beam search's last tokens
                if output is not None:
                    self._deliver(session, output)
                self._finalise(session)
            else:
                session.drained.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.wake.clear()  # set again by new audio, "Done" or a finished batch
            self._absorb()
            free = self.workers - len(self.in_flight)
            if self.pending and free:
                size = min(self.max_batch, -(-len(self.pending) // free))
                for _ in range(free):
                    if not self.pending:
                        break
                    batch = [self.pending.popitem(last=False)[0] for _ in range(min(size, len(self.pending)))]
                    for session in batch:
                        session.busy = True
                    self.in_flight.add(loop.create_task(self._decode(batch)))
            self.queue_depth = len(self.pending)
            await self.wake.wait()

    async def _decode(self, batch: list[Session]) -> None:
        """Run one batch on a model thread, then deliver its results."""
        loop = asyncio.get_running_loop()
        try:
            started = time.perf_counter()
            outputs = await loop.run_in_executor(self.executor, self.recognizer.decode_streams,
                                                 [s.stream for s in batch])
            if self.on_batch:
                self.on_batch(len(batch), time.perf_counter() - started)
            for session, output in zip(batch, outputs):
                if output is not None:
                    self._deliver(session, output)
        except Exception as error:  # a model error ends these streams, not the server
            log.exception("model call failed for a batch of %d streams", len(batch))
            for session in batch:
                session.finished = True
                session.results.put_nowait(ModelFailure(f"model error: {type(error).__name__}: {error}"[:120]))
                session.drained.set()
        finally:
            for session in batch:
                session.busy = False
                if not session.closed:
                    self.dirty[session] = None  # another chunk may be ready, or audio came meanwhile
            self.in_flight.discard(asyncio.current_task())
            self.wake.set()

    def _deliver(self, session: Session, output: ChunkOutput) -> None:
        for event in output.tokens:
            session.tokens.append((event.piece.replace("\u2581", " "), round(event.start_ms / 1000, 2)))
        if output.final or session.stream.finished:
            self._finalise(session)
            return
        if output.endpoint:  # the segment ended: its final, then a fresh segment
            session.results.put_nowait(self.result(session, output.segment_text, output.segment, final=True))
            session.tokens, session.last_text = [], None
            return
        result = session.stream.result
        text = result.text.strip()
        if text != session.last_text:
            session.last_text = text
            session.results.put_nowait(self.result(session, text, result.segment, final=False))

    def _finalise(self, session: Session) -> None:
        if session.finished:
            return
        session.finished = True
        result = session.stream.result
        session.results.put_nowait(self.result(session, result.text.strip(), result.segment, final=True, eof=True))
        session.results.put_nowait(None)  # end of results
        session.drained.set()

    @staticmethod
    def result(session: Session, text: str, segment: int, final: bool, eof: bool = False) -> dict:
        """sherpa-onnx's result message: the segment's text so far, its tokens and their
        start times (seconds from the stream start), the segment's number, whether it is
        the segment's final result and whether it is the stream's last."""
        return {"text": text, "tokens": [p for p, _ in session.tokens],
                "timestamps": [t for _, t in session.tokens], "segment": segment, "is_final": final, "is_eof": eof}


__all__ = ["BatchWorker", "ModelFailure", "Session"]
