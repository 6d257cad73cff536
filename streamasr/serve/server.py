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
exact transcripts. A close waits ``close_timeout`` seconds (default 1) for the client's
side of the closing handshake, then drops the connection: a stream closed for
back-pressure is not read any more, so its client's reply would never arrive (websockets'
default of 10 s made each such close last 10 s; the client has the code and reason
either way).

SIGTERM / SIGINT: stop accepting, give open streams ``drain_seconds`` to send ``Done``,
then finish every open stream (its final result and ``Done!``) and exit 0.

HTTP (requests without ``Upgrade: websocket``): ``/`` (a page that streams the
microphone or a file: ``static/index.html``, its resampling AudioWorklet
``static/worklet.js``), ``/healthz`` (``ok``), ``/metrics`` (Prometheus text format),
404 for any other path. A WebSocket upgrade is a stream on whatever path it names, as
sherpa-onnx's server takes it (its clients and our page use ``/``).

Listening: ``bind_listener`` binds the port before the model is loaded, so that a busy
port, a bad ``--port`` or ``--host`` or an unreadable certificate is one line at once
rather than a traceback after the load and warm-up; ``serve_forever(...,
listener=...)`` then serves on those sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import signal
import socket
import ssl
import time
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from streamasr.errors import ConfigError, StreamAsrError
from streamasr.live.resample import StreamingResampler
from streamasr.serve.config import ServeConfig
from streamasr.serve.worker import BatchWorker, ModelFailure, Session
from streamasr.streaming.recognizer import StreamingRecognizer
from streamasr.units import SAMPLE_RATE

if TYPE_CHECKING:  # websockets itself is imported when the server starts
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

FORMATS = {"float32": np.float32, "int16": np.int16}
STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/worklet.js": ("worklet.js", "text/javascript; charset=utf-8")}
PLAIN_TEXT = "text/plain; charset=utf-8"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"  # the exposition format's own type
@dataclasses.dataclass
class Listener:
    """What the server needs from the operating system, acquired before the model is
    loaded (``bind_listener``): one bound socket per address ``--host`` resolves to
    (all on one port) and the TLS context, if any. The sockets are bound but not yet
    listening: until the server serves on them, a client is refused at once instead of
    waiting through the load in the backlog (and with ``--reuse-port`` the kernel
    gives connections only to processes that listen, i.e. that are ready)."""

    sockets: list[socket.socket]
    ssl_context: Optional[ssl.SSLContext] = None

    @property
    def port(self) -> int:
        return self.sockets[0].getsockname()[1]

    def close(self) -> None:
        """Release the port (a server that was never started on it)."""
        for sock in self.sockets:
            sock.close()


def _address(host: str, port: int) -> str:
    """``host:port`` as one writes it in a URL (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen_problem(error: OSError, config: ServeConfig) -> str:
    """Why ``bind``/``listen`` failed, in words, with the option that fixes it."""
    if error.errno == errno.EADDRINUSE:
        if config.reuse_port:
            return "address already in use (by a server without --reuse-port, or another user's? pick --port)"
        return "address already in use (another server? pick --port)"
    if error.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges; pick --port)"
    if error.errno == errno.EADDRNOTAVAIL:
        return "no such address on this machine (check --host)"
    return (error.strerror or str(error)).lower()


def _tls_context(config: ServeConfig) -> Optional[ssl.SSLContext]:
    """The server's TLS context (``--certfile``/``--keyfile``), or None without TLS."""
    if not config.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.certfile, config.keyfile)
    except OSError as error:  # ssl.SSLError is one too (not PEM, key does not match)
        raise ConfigError(f"--certfile {config.certfile} / --keyfile {config.keyfile}: cannot load them "
                          f"({error.strerror or error})") from None
    return context


def bind_listener(config: ServeConfig) -> Listener:
    """Bind ``config.host``:``config.port`` (and load the TLS certificate) now, before
    the model is loaded: a busy port, a port out of range, an unknown host or a bad
    certificate raises ``ConfigError`` with one line instead of a traceback after the
    load and warm-up.

    Binds as ``websockets.serve(handler, host, port)`` does (asyncio's
    ``create_server``): every address the host resolves to (``""``: all interfaces,
    IPv4 and IPv6; ``localhost``: as ``/etc/hosts`` says), ``SO_REUSEADDR`` (restart
    while old connections linger in TIME_WAIT), ``SO_REUSEPORT`` with
    ``config.reuse_port``, IPv6 sockets IPv6-only. Port 0 picks a free port, the same
    for every address. Pass the result to ``serve_forever`` / ``start_server``; close it
    if the server is never started."""
    config.check()
    context = _tls_context(config)
    try:
        infos = socket.getaddrinfo(config.host or None, config.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"cannot listen on {_address(config.host, config.port)}: --host {config.host!r} "
                          f"does not resolve ({error.strerror})") from None
    sockets: list[socket.socket] = []
    port = config.port
    for family, kind, protocol, _, address in dict.fromkeys(infos):  # without repeats, in order
        try:
            sock = socket.socket(family, kind, protocol)
        except OSError:
            continue  # a family this machine lacks (IPv6 off), as asyncio skips it
        sockets.append(sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if config.reuse_port:
                if not hasattr(socket, "SO_REUSEPORT"):
                    raise ConfigError("--reuse-port: SO_REUSEPORT is not available on this system")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:  # Linux would otherwise take IPv4 on it too
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
        except OSError as error:
            for opened in sockets:
                opened.close()
            raise ConfigError(f"cannot listen on {_address(address[0], port)}: "
                              f"{_listen_problem(error, config)}") from None
        except BaseException:
            for opened in sockets:
                opened.close()
            raise
        port = sock.getsockname()[1]  # port 0: the other addresses on the port the first got
    if not sockets:
        raise ConfigError(f"cannot listen on {_address(config.host, config.port)}: no usable address")
    return Listener(sockets, context)


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


def _respond(connection: ServerConnection, status: HTTPStatus, body: str,
             content_type: str = PLAIN_TEXT) -> Response:
    """``connection.respond`` (status, body, its Content-Length) with exactly one
    Content-Type. Why not ``response.headers["Content-Type"] = ...``: websockets'
    ``Headers`` is multi-valued, so assigning adds a second Content-Type after
    ``respond``'s text/plain one, and clients see both (PROBES.md, section 3)."""
    response = connection.respond(status, body)
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = content_type
    return response


def _wants_websocket(request: Request) -> bool:
    """Whether the request asks for a WebSocket (``Upgrade: websocket``, in any case,
    among other tokens or headers: RFC 9110 makes Upgrade a list)."""
    tokens = (token.strip().lower() for value in request.headers.get_all("Upgrade") for token in value.split(","))
    return "websocket" in tokens


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

    def __init__(self, recognizer: StreamingRecognizer, config: ServeConfig, listener: Optional[Listener] = None):
        config.check()
        self.recognizer = recognizer
        self.config = config
        self.listener = listener  # bound before the model loaded (bind_listener); None: bind in start()
        self.metrics = Metrics()
        self.worker: Optional[BatchWorker] = None
        self.connections: set = set()
        self.sessions: dict = {}
        self.stopping = False
        self.servers: list = []  # websockets' servers: one, or one per socket of the listener
        self.recorded = 0
        self.trimmer: Optional[asyncio.Task] = None

    # ------------------------------------------------------------------ HTTP
    def process_request(self, connection: ServerConnection, request: Request) -> Optional[Response]:
        """Plain HTTP requests get a page, ``/healthz``, ``/metrics`` or 404; WebSocket
        upgrades on any path become streams (503 while shutting down or full)."""
        if not _wants_websocket(request):
            return self._http(connection, request.path.partition("?")[0])
        if self.stopping:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "server shutting down\n")
        if len(self.connections) >= self.config.max_connections:
            self.metrics.refused.inc()
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE,
                                      f"server full: {len(self.connections)} of --max-connections "
                                      f"{self.config.max_connections} streams open\n")
        return None

    def _http(self, connection: ServerConnection, path: str) -> Response:
        if path in PAGES:
            name, kind = PAGES[path]
            return _respond(connection, HTTPStatus.OK, (STATIC / name).read_text(encoding="utf-8"), kind)
        if path == "/healthz":
            return _respond(connection, HTTPStatus.OK, "ok\n")
        if path == "/metrics":
            self.metrics.queue.set(self.worker.queue_depth if self.worker else 0)
            return _respond(connection, HTTPStatus.OK, self.metrics.render().decode(), PROMETHEUS_TEXT)
        # before, such a request went on to the WebSocket handshake and got 426 Upgrade Required
        return _respond(connection, HTTPStatus.NOT_FOUND,
                        f"not found: {path[:100]} (HTTP: {' '.join(PAGES)} /healthz /metrics; "
                        f"WebSocket streams: any path)\n")

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
        """Warm the model up, then serve: on ``self.listener``'s sockets if it was given
        (``bind_listener``), else bind ``config.host``:``config.port`` now."""
        from websockets.asyncio.server import serve

        context = self.listener.ssl_context if self.listener else _tls_context(self.config)  # before the warm-up
        self.worker = BatchWorker(self.recognizer, self.config.max_batch, on_batch=self.metrics.on_batch,
                                  workers=self.config.workers)
        await self.worker.warm_up()
        self.worker.start()
        options: dict[str, Any] = dict(
            ssl=context, process_request=self.process_request, max_size=self.config.max_message_bytes,
            compression=None,  # audio barely compresses; deflate cost both ends CPU
            ping_interval=20, ping_timeout=20, close_timeout=self.config.close_timeout)
        if self.listener is None:
            self.servers = [await serve(self.handle, self.config.host, self.config.port,
                                        reuse_port=self.config.reuse_port or None, **options)]
        else:
            # websockets serves one pre-bound socket per server; a host with several
            # addresses (all interfaces, IPv4 and IPv6) gets one server each
            for sock in self.listener.sockets:
                try:
                    self.servers.append(await serve(self.handle, sock=sock, **options))  # listen() happens here
                except OSError as error:  # another process bound the port too and listened first
                    for server in self.servers:
                        server.close()
                    host, port = sock.getsockname()[:2]
                    raise ConfigError(f"cannot listen on {_address(host, port)}: "
                                      f"{_listen_problem(error, self.config)}") from None
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
        """The port the server listens on (the one the kernel picked for port 0)."""
        return next(iter(self.servers[0].sockets)).getsockname()[1]

    @property
    def url(self) -> str:
        """Where clients connect: ``ws://`` or ``wss://`` (TLS), host and port."""
        return f"{'wss' if self.config.certfile else 'ws'}://{_address(self.config.host, self.port)}"

    async def shutdown(self) -> None:
        """Stop accepting, drain, finish every open stream, close."""
        self.stopping = True
        for server in self.servers:
            server.close(close_connections=False)
        deadline = time.monotonic() + self.config.drain_seconds
        while any(not s.input_done for s in self.sessions.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions.values()):
            if not session.input_done:
                self.worker.finish(session)  # the server ends it: its final, then Done!
        while self.sessions and time.monotonic() < deadline + 30:
            await asyncio.sleep(0.05)
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()
        if self.trimmer:
            self.trimmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.trimmer
        await self.worker.stop()


async def start_server(recognizer: StreamingRecognizer, config: ServeConfig,
                       listener: Optional[Listener] = None) -> Server:
    """A started server (warmed up and serving), on ``listener``'s sockets if given.
    If it cannot start, the listener's port is released."""
    server = Server(recognizer, config, listener)
    try:
        await server.start()
    except BaseException:
        if listener is not None:
            listener.close()  # closing a socket websockets already closed is harmless
        raise
    return server


def serve_forever(recognizer: StreamingRecognizer, config: ServeConfig,
                  ready: Optional[Callable[[Server], None]] = None, listener: Optional[Listener] = None) -> int:
    """Serve (on ``listener``, from ``bind_listener(config)`` before the model was
    loaded; without it, bind ``config.host``:``config.port`` after the warm-up) until
    SIGTERM / SIGINT, then shut down gracefully; returns 0. ``ready(server)`` is called
    once it serves."""

    async def main() -> None:
        server = await start_server(recognizer, config, listener)
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


__all__ = ["Listener", "ProtocolError", "ServeConfig", "Server", "bind_listener", "serve_forever", "start_server"]
