"""The WebSocket server (``websockets``' asyncio implementation: no hand-written HTTP or
WebSocket framing).

Protocol (sherpa-onnx's streaming server, so its clients work unchanged):

* the client sends binary messages of float32 samples at 16 kHz, then the text
  ``Done``; optionally a first text message ``{"sample_rate": R, "format":
  "float32" | "int16", "hotwords": ["PHRASE", "PHRASE :score", ...]}`` for other rates
  (resampled here), int16 samples, or this stream's own hotwords (``serve --decoding
  beam``; they replace ``--hotwords`` for the stream);
* the server sends JSON results ``{"text", "tokens", "timestamps", "segment",
  "is_final", "is_eof"}`` (``text`` = the transcript so far; partials only when it
  changed), the final one (``is_final`` and ``is_eof`` true) right after the last chunk,
  then the text ``Done!``.

Limits, each with a reason the client sees (close code 1008 or 1009, or HTTP 503):
``max_connections`` (HTTP 503 before the handshake), ``max_message_bytes``,
``max_buffer_seconds`` of audio not yet decoded (the server stops reading the socket,
which is TCP back-pressure, and closes it if the buffer stays full for
``buffer_deadline`` seconds), ``idle_timeout`` without a message, malformed input (text
that is neither ``Done`` nor a JSON start message, a byte count that is not whole
samples, NaN or infinite samples, an unknown format or rate). Other streams keep their
exact transcripts.

SIGTERM / SIGINT: stop accepting, give open streams ``drain_seconds`` to send ``Done``,
then finish every open stream (its final result and ``Done!``) and exit 0.

HTTP: ``/`` (a page that streams the microphone or a file: ``static/index.html``, its
resampling AudioWorklet ``static/worklet.js``), ``/healthz`` (``ok``), ``/metrics``
(Prometheus text format).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
import ssl
import time
from http import HTTPStatus
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from streamasr.errors import ConfigError, StreamAsrError
from streamasr.live.resample import StreamingResampler
from streamasr.serve.worker import BatchWorker, ModelFailure, Session
from streamasr.streaming.recognizer import StreamingRecognizer
from streamasr.units import SAMPLE_RATE

FORMATS = {"float32": np.float32, "int16": np.int16}
STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/worklet.js": ("worklet.js", "text/javascript; charset=utf-8")}


@dataclasses.dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 6006
    max_batch: int = 32
    workers: int = 2  # model threads, each running its own batches (worker.py)
    max_connections: int = 200
    max_message_bytes: int = 1 << 20
    max_buffer_seconds: float = 30.0
    buffer_deadline: float = 10.0
    idle_timeout: float = 60.0
    drain_seconds: float = 5.0
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    record_dir: Optional[str] = None  # debug: each stream's 16 kHz audio as the recogniser got it
    reuse_port: bool = False  # SO_REUSEPORT: several server processes share one port (Linux balances)
    trim_seconds: float = 10.0  # hand freed heap back to the OS this often (glibc; _malloc_trim)

    def check(self) -> None:
        for name in ("max_batch", "workers", "max_connections", "max_message_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        for name in ("max_buffer_seconds", "buffer_deadline", "idle_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        if bool(self.certfile) != bool(self.keyfile):
            raise ConfigError("--certfile and --keyfile go together")


def _malloc_trim() -> Optional[Callable[[], object]]:
    """glibc's ``malloc_trim(0)``, or None off glibc. Why: after bursts of connections
    glibc keeps tens of MB of freed heap in its arenas (one per thread that allocated,
    the model threads included) and returns it only on request (measured: ~55 MB of
    free heap after 500 short connections, back to the OS on one call); the server asks
    every ``trim_seconds``."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return libc.malloc_trim if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


class ProtocolError(Exception):
    """Malformed input from a client: closes its connection with this reason."""


class Metrics:
    """The server's Prometheus metrics (one registry per server)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.active = Gauge("streamasr_active_streams", "open streams", registry=self.registry)
        self.chunks = Counter("streamasr_chunks_total", "chunks decoded", registry=self.registry)
        self.batch = Histogram("streamasr_batch_size", "streams per model call", registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.latency = Histogram("streamasr_model_call_seconds", "seconds per model call", registry=self.registry,
                                 buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2))
        self.queue = Gauge("streamasr_ready_streams", "streams with a chunk ready (queue depth)",
                           registry=self.registry)
        self.refused = Counter("streamasr_refused_connections_total", "connections refused (limit)",
                               registry=self.registry)
        self.closed = Counter("streamasr_closed_with_error_total", "connections closed for bad input or a limit",
                              registry=self.registry)

    def on_batch(self, size: int, seconds: float) -> None:
        self.chunks.inc(size)
        self.batch.observe(size)
        self.latency.observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class Server:
    """One ``streamasr serve`` process (module docstring)."""

    def __init__(self, recognizer: StreamingRecognizer, config: ServeConfig):
        config.check()
        self.recognizer = recognizer
        self.config = config
        self.metrics = Metrics()
        self.worker: Optional[BatchWorker] = None
        self.connections: set = set()
        self.sessions: dict = {}
        self.stopping = False
        self.server = None
        self.recorded = 0
        self.trimmer: Optional[asyncio.Task] = None

    # ------------------------------------------------------------------ HTTP
    def process_request(self, connection, request):
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if request.path in PAGES and not upgrade:
            name, kind = PAGES[request.path]
            response = connection.respond(HTTPStatus.OK, (STATIC / name).read_text(encoding="utf-8"))
            response.headers["Content-Type"] = kind
            return response
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if request.path == "/metrics":
            self.metrics.queue.set(self.worker.queue_depth if self.worker else 0)
            response = connection.respond(HTTPStatus.OK, self.metrics.render().decode())
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        if self.stopping:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "server shutting down\n")
        if len(self.connections) >= self.config.max_connections:
            self.metrics.refused.inc()
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                      f"server full: {len(self.connections)} of --max-connections "
                                      f"{self.config.max_connections} streams open\n")
        return None

    # ------------------------------------------------------------------ one stream
    async def handle(self, websocket) -> None:
        from websockets.exceptions import ConnectionClosed

        self.connections.add(websocket)
        self.metrics.active.inc()
        session = self.worker.open()
        self.sessions[websocket] = session
        loop = asyncio.get_running_loop()
        sender = loop.create_task(self._send_results(websocket, session))
        receiver = loop.create_task(self._receive(websocket, session))
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if receiver in done:
                receiver.result()  # a ProtocolError or ConnectionClosed surfaces here
                await sender  # the final result and Done!
            else:  # the server finished the stream (shutdown): stop reading
                sender.result()
        except ProtocolError as error:
            self.metrics.closed.inc()
            await websocket.close(1008, str(error)[:120])
        except ConnectionClosed:
            pass
        finally:
            for task in (receiver, sender):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.worker.close(session)
            if self.config.record_dir:
                self._record(session)
            self.sessions.pop(websocket, None)
            self.connections.discard(websocket)
            self.metrics.active.dec()

    async def _receive(self, websocket, session: Session) -> None:
        rate, dtype, resampler = SAMPLE_RATE, np.float32, None
        first = True
        while not session.input_done:
            try:
                message = await asyncio.wait_for(websocket.recv(), self.config.idle_timeout)
            except asyncio.TimeoutError:
                raise ProtocolError(f"idle for {self.config.idle_timeout:g} s") from None
            if isinstance(message, str):
                if message == "Done":
                    if resampler is not None:
                        tail = resampler.process(np.zeros(0, np.float32), final=True)
                        if self.config.record_dir:
                            session.recording.append(tail)
                        self.worker.push(session, tail)
                    self.worker.finish(session)
                    return
                if not first:
                    raise ProtocolError(f"unexpected text message {message[:40]!r}: expected binary audio or 'Done'")
                rate, dtype, hotwords = self._start_message(message)
                if hotwords is not None:
                    try:
                        self.recognizer.set_hotwords(session.stream, hotwords)
                    except StreamAsrError as error:
                        raise ProtocolError(str(error)) from None
                resampler = StreamingResampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
                first = False
                continue
            first = False
            samples = self._samples(message, dtype)
            if resampler is not None:
                samples = resampler.process(samples)
            if self.config.record_dir:
                session.recording.append(samples)
            self.worker.push(session, samples)
            await self._wait_for_room(session)

    @staticmethod
    def _start_message(message: str) -> tuple[int, type, Optional[list]]:
        try:
            start = json.loads(message)
        except json.JSONDecodeError:
            raise ProtocolError(f"text message {message[:40]!r} is neither 'Done' nor a JSON start message") \
                from None
        if not isinstance(start, dict):
            raise ProtocolError("the start message must be a JSON object")
        unknown = sorted(set(start) - {"sample_rate", "format", "hotwords"})
        if unknown:
            raise ProtocolError(f"unknown start-message field(s) {', '.join(unknown)}")
        fmt = start.get("format", "float32")
        if fmt not in FORMATS:
            raise ProtocolError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
        rate = start.get("sample_rate", SAMPLE_RATE)
        if not isinstance(rate, int) or not 8000 <= rate <= 192000:
            raise ProtocolError(f"sample_rate {rate!r}: expected an integer from 8000 to 192000")
        hotwords = start.get("hotwords")
        if hotwords is not None and (not isinstance(hotwords, list) or len(hotwords) > 1000):
            raise ProtocolError("hotwords: expected a list of at most 1000 phrases ('PHRASE' or 'PHRASE :score')")
        return rate, FORMATS[fmt], hotwords

    @staticmethod
    def _samples(message: bytes, dtype: type) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        if len(message) % size:
            raise ProtocolError(f"{len(message)} bytes is not a whole number of {np.dtype(dtype).name} samples")
        samples = np.frombuffer(message, dtype=dtype)
        if dtype == np.int16:
            return samples.astype(np.float32) / 32768.0
        if not np.isfinite(samples).all():
            raise ProtocolError("NaN or infinite samples")
        return samples.astype(np.float32, copy=True)

    async def _wait_for_room(self, session: Session) -> None:
        """Back-pressure: stop reading while the session has more than
        ``max_buffer_seconds`` of undecoded audio; give up after ``buffer_deadline``."""
        if session.buffered_seconds(self.recognizer) <= self.config.max_buffer_seconds:
            return
        deadline = time.monotonic() + self.config.buffer_deadline
        while session.buffered_seconds(self.recognizer) > self.config.max_buffer_seconds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProtocolError(f"more than {self.config.max_buffer_seconds:g} s of audio waiting for "
                                    f"{self.config.buffer_deadline:g} s: the server cannot keep up with this stream")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.drained.wait(), min(remaining, 0.05))

    def _record(self, session: Session) -> None:
        import soundfile

        self.recorded += 1
        folder = Path(self.config.record_dir)
        folder.mkdir(parents=True, exist_ok=True)
        audio = np.concatenate(session.recording) if session.recording else np.zeros(0, np.float32)
        soundfile.write(folder / f"stream-{self.recorded:05d}.wav", audio, SAMPLE_RATE, subtype="FLOAT")

    async def _send_results(self, websocket, session: Session) -> None:
        while True:
            result = await session.results.get()
            if result is None:
                await websocket.send("Done!")
                return
            if isinstance(result, ModelFailure):
                await websocket.close(1011, result)
                return
            await websocket.send(json.dumps(result, ensure_ascii=False))

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        from websockets.asyncio.server import serve

        self.worker = BatchWorker(self.recognizer, self.config.max_batch, on_batch=self.metrics.on_batch,
                                  workers=self.config.workers)
        await self.worker.warm_up()
        self.worker.start()
        context = None
        if self.config.certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.config.certfile, self.config.keyfile)
        self.server = await serve(self.handle, self.config.host, self.config.port, ssl=context,
                                  process_request=self.process_request, max_size=self.config.max_message_bytes,
                                  compression=None,  # audio barely compresses; deflate cost both ends CPU
                                  ping_interval=20, ping_timeout=20, reuse_port=self.config.reuse_port or None)
        trim = _malloc_trim()
        if trim is not None and self.config.trim_seconds > 0:
            # once now (what the warm-up freed; and the thread that trims exists from the
            # start), then every trim_seconds
            await asyncio.get_running_loop().run_in_executor(None, trim, 0)
            self.trimmer = asyncio.get_running_loop().create_task(self._trim_memory(trim))

    async def _trim_memory(self, trim: Callable[[int], object]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.trim_seconds)
            await loop.run_in_executor(None, trim, 0)  # 1-13 ms; ctypes releases the GIL meanwhile

    @property
    def port(self) -> int:
        return next(iter(self.server.sockets)).getsockname()[1]

    async def shutdown(self) -> None:
        """Stop accepting, drain, finish every open stream, close."""
        self.stopping = True
        self.server.close(close_connections=False)
        deadline = time.monotonic() + self.config.drain_seconds
        while any(not s.input_done for s in self.sessions.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions.values()):
            if not session.input_done:
                self.worker.finish(session)  # the server ends it: its final, then Done!
        while self.sessions and time.monotonic() < deadline + 30:
            await asyncio.sleep(0.05)
        self.server.close()
        await self.server.wait_closed()
        if self.trimmer:
            self.trimmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.trimmer
        await self.worker.stop()


async def start_server(recognizer: StreamingRecognizer, config: ServeConfig) -> Server:
    server = Server(recognizer, config)
    await server.start()
    return server


def serve_forever(recognizer: StreamingRecognizer, config: ServeConfig, ready: Optional[callable] = None) -> int:
    """Run until SIGTERM / SIGINT, then shut down gracefully; returns 0."""

    async def main() -> None:
        server = await start_server(recognizer, config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if ready:
            ready(server)
        await stop.wait()
        await server.shutdown()

    asyncio.run(main())
    return 0


__all__ = ["ProtocolError", "ServeConfig", "Server", "serve_forever", "start_server"]
