"""`streamasr serve`: sherpa-onnx's protocol round trip equal to our engine (streams at
different positions batched together), sherpa-onnx's own C++ client against it, the
start message (int16, other rates), every limit and malformed input with the other
streams' transcripts unchanged, HTTP 503, /healthz and /metrics (one Content-Type each,
404 elsewhere), the port bound before the model loads, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import urllib.request

import numpy as np
import pytest
import torch
import websockets
from prometheus_client.parser import text_string_to_metric_families
from speechbrain.utils.dynamic_chunk_training import DynChunkTrainConfig

from streamasr.errors import ConfigError
from streamasr.export.sherpa_check import load_manifest, sherpa_binary, stream_to_server
from streamasr.live.resample import resample_whole
from streamasr.serve import ServeConfig, bind_listener, start_server
from streamasr.serve.server import Server
from streamasr.streaming import StreamingRecognizer

CONFIG = DynChunkTrainConfig(8, 4)  # 320 ms chunks


@pytest.fixture(scope="module")
def utterances(tiny_corpus):
    return load_manifest(tiny_corpus / "test_voices.csv")


@pytest.fixture(scope="module")
def expected(kaldi_model, utterances):
    """Our engine's transcript of each utterance alone."""
    return [StreamingRecognizer(kaldi_model, CONFIG).transcribe(u.wave)[0].result.text.strip() for u in utterances]


def run(coroutine):
    return asyncio.run(coroutine)


async def close_frame(ws):
    """Read until the server closes ``ws`` with an error; its close frame (code, reason)."""
    with pytest.raises(websockets.ConnectionClosedError) as closed:
        async for _ in ws:
            pass
    return closed.value.rcvd


async def serving(model, body, **overrides):
    server = await start_server(StreamingRecognizer(model, CONFIG), ServeConfig(port=0, **overrides))
    try:
        return await body(server)
    finally:
        await server.shutdown()


@pytest.mark.parametrize("workers", [1, 2])
def test_streams_joining_at_different_times_get_their_own_transcripts(kaldi_model, utterances, expected, workers):
    async def body(server):
        async def one(index, utterance):
            await asyncio.sleep(0.15 * index)  # staggered: the batch mixes positions
            return await stream_to_server(server.port, utterance.wave.numpy(), seconds_per_message=0.1, pace=0.02)
        return await asyncio.gather(*(one(i, u) for i, u in enumerate(utterances)))

    results = run(serving(kaldi_model, body, max_batch=8, workers=workers))
    assert [r["text"] for r in results] == expected
    assert all(len(text) > 20 for text in expected), "vacuous: the decisive random model emits many tokens"
    for result in results:
        assert 1 <= result["messages"] and len(result["tokens"]) > 0


def test_a_model_error_closes_the_streams_of_that_batch_only(kaldi_model, utterances, expected):
    """A batch whose model call raises closes its connections with 1011 and the reason;
    the server goes on serving (no compression is negotiated either: audio barely
    compresses and deflate costs both ends CPU)."""
    async def body(server):
        real = server.recognizer.decode_streams
        failed = []

        def decode_streams(streams):
            if not failed:
                failed.append(len(streams))
                raise RuntimeError("injected")
            return real(streams)

        server.recognizer.decode_streams = decode_streams
        async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            await ws.send(utterances[0].wave.numpy().tobytes())
            await ws.send("Done")
            closed = await close_frame(ws)
        after = await stream_to_server(server.port, utterances[1].wave.numpy(), seconds_per_message=0.1, pace=0.0)
        return closed, after, failed

    closed, after, failed = run(serving(kaldi_model, body, workers=1))
    assert failed == [1]
    assert closed.code == 1011 and "model error: RuntimeError: injected" in closed.reason
    assert after["text"] == expected[1]


def test_sherpa_onnx_cpp_client_works_unchanged(kaldi_model, wavs, expected, tmp_path):
    binary = sherpa_binary("sherpa-onnx-online-websocket-client")  # sherpa-onnx-bin: a dependency

    async def body(server):
        process = await asyncio.create_subprocess_exec(
            binary, "--server-ip=127.0.0.1", f"--server-port={server.port}", "--seconds-per-message=0.05",
            wavs[0], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
        return process.returncode, output.decode(errors="replace")

    code, output = run(serving(kaldi_model, body))
    assert code == 0, output[-2000:]
    finals = [json.loads(line[line.index("{"):]) for line in output.splitlines() if '"is_eof"' in line
              and "{" in line]
    assert finals and finals[-1]["text"] == expected[0]


def test_int16_at_8_khz_is_resampled(kaldi_model, utterances):
    wave = utterances[0].wave.numpy()
    low = resample_whole(wave, 16000, 8000)
    reference = StreamingRecognizer(kaldi_model, CONFIG).transcribe(
        torch.from_numpy(resample_whole(np.round(low * 32767) / 32768, 8000, 16000)))[0].result.text.strip()

    async def body(server):
        async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
            await ws.send(json.dumps({"sample_rate": 8000, "format": "int16"}))
            pcm = np.round(low * 32767).astype(np.int16)
            for begin in range(0, len(pcm), 1600):
                await ws.send(pcm[begin : begin + 1600].tobytes())
            await ws.send("Done")
            messages = [m async for m in ws]
        return messages

    messages = run(serving(kaldi_model, body))
    assert messages[-1] == "Done!"
    final = json.loads(messages[-2])
    assert final["is_final"] and final["is_eof"]
    assert len(final["text"]) > 20
    # the server resamples block by block; equal to the whole-signal resampling (~1e-6)
    assert final["text"] == reference


@pytest.mark.parametrize("bad, reason", [
    ("hello", "neither 'Done' nor a JSON start message"),
    (b"\x00\x00\x80", "3 bytes is not a whole number of float32 samples"),
    (np.array([0.1, np.nan], dtype=np.float32).tobytes(), "NaN or infinite samples"),
    (json.dumps({"format": "mp3"}), "format 'mp3'"),
    (json.dumps({"sample_rate": 44100.5}), "sample_rate 44100.5"),
])
def test_malformed_input_closes_that_stream_only(kaldi_model, utterances, expected, bad, reason):
    async def body(server):
        async def faulty():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
                await ws.send(np.zeros(1600, dtype=np.float32).tobytes() if isinstance(bad, bytes) else bad)
                await ws.send(bad)
                return await close_frame(ws)

        good = [stream_to_server(server.port, u.wave.numpy(), seconds_per_message=0.1, pace=0.01)
                for u in utterances[:2]]
        return await asyncio.gather(faulty(), *good)

    closed, *results = run(serving(kaldi_model, body))
    assert closed.code == 1008 and reason in closed.reason
    assert [r["text"] for r in results] == expected[:2]


def test_connection_limit_answers_503_and_http_endpoints(kaldi_model, utterances):
    async def body(server):
        async with websockets.connect(f"ws://127.0.0.1:{server.port}"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(f"ws://127.0.0.1:{server.port}"):
                    pass
        loop = asyncio.get_running_loop()
        health = await loop.run_in_executor(None, lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{server.port}/healthz").read().decode())
        await stream_to_server(server.port, utterances[0].wave.numpy(), pace=0.0)
        metrics = await loop.run_in_executor(None, lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{server.port}/metrics").read().decode())
        return refused.value.response, health, metrics

    response, health, metrics = run(serving(kaldi_model, body, max_connections=1))
    assert response.status_code == 503 and b"--max-connections 1" in response.body
    assert health == "ok\n"
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    chunks = [s.value for s in families["streamasr_chunks"].samples if s.name == "streamasr_chunks_total"]
    assert chunks[0] >= 1
    assert [s.value for s in families["streamasr_refused_connections"].samples
            if s.name.endswith("_total")] == [1.0]
    assert "streamasr_batch_size" in families and "streamasr_active_streams" in families


def test_idle_and_overloaded_streams_are_closed_with_a_reason(kaldi_model, utterances):
    async def body(server):
        async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
            await ws.send(np.zeros(1600, dtype=np.float32).tobytes())
            return await close_frame(ws)

    closed = run(serving(kaldi_model, body, idle_timeout=0.5))
    assert closed.code == 1008 and "idle for 0.5 s" in closed.reason

    slow = StreamingRecognizer(kaldi_model, CONFIG)
    decode = slow.decode_streams

    def stalled(streams):
        import time
        time.sleep(1.0)
        return decode(streams)

    async def overload():
        server = await start_server(slow, ServeConfig(port=0, max_buffer_seconds=0.5, buffer_deadline=0.3))
        slow.decode_streams = stalled  # after the start-up warm-up, which calls it 64 times
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
                wave = utterances[0].wave.numpy()
                with pytest.raises(websockets.ConnectionClosedError) as full:
                    for begin in range(0, len(wave), 1600):
                        await ws.send(wave[begin : begin + 1600].tobytes())
                    async for _ in ws:
                        pass
                return full.value.rcvd
        finally:
            await server.shutdown()

    closed = run(overload())
    assert closed.code == 1008 and "cannot keep up" in closed.reason


def test_oversized_message_is_refused(kaldi_model):
    async def body(server):
        async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
            await ws.send(np.zeros(2000, dtype=np.float32).tobytes())  # 8,000 bytes > 4,096
            return await close_frame(ws)

    closed = run(serving(kaldi_model, body, max_message_bytes=4096))
    assert closed.code == 1009 and "4096" in closed.reason


def test_shutdown_finishes_open_streams(kaldi_model, utterances):
    async def body():
        server = await start_server(StreamingRecognizer(kaldi_model, CONFIG), ServeConfig(port=0, drain_seconds=0.3))
        async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
            await ws.send(utterances[0].wave.numpy().tobytes())  # never sends Done
            await asyncio.sleep(0.3)
            stopping = asyncio.create_task(server.shutdown())
            messages = [m async for m in ws]
            await stopping
        return messages

    messages = run(body())
    assert messages[-1] == "Done!"
    final = json.loads(messages[-2])
    assert final["is_eof"] and len(final["text"]) > 20


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="--max-batch must be >= 1"):
        ServeConfig(max_batch=0).check()
    with pytest.raises(ConfigError, match="--certfile and --keyfile go together"):
        Server(None, ServeConfig(certfile="cert.pem"))


def test_a_session_closed_during_its_batch_is_not_decoded_again(kaldi_model, utterances):
    """A connection that goes away while its chunk is on a model thread: the batch
    finishes unheeded and the session never enters another batch."""
    from streamasr.serve.worker import BatchWorker

    recognizer = StreamingRecognizer(kaldi_model, CONFIG)
    calls = []
    real = recognizer.decode_streams

    def slow(streams):
        calls.append(len(streams))
        import time
        time.sleep(0.2)
        return real(streams)

    recognizer.decode_streams = slow

    async def body():
        worker = BatchWorker(recognizer, max_batch=4, workers=2)
        worker.start()
        session = worker.open()
        worker.push(session, utterances[0].wave.numpy()[:32000])  # several chunks ready
        for _ in range(100):
            await asyncio.sleep(0.01)
            if session.busy:
                break
        assert session.busy
        worker.close(session)
        for _ in range(1000):  # until its batch returned (however loaded the machine)
            await asyncio.sleep(0.01)
            if not session.busy:
                break
        await asyncio.sleep(0.3)  # time for a wrong second batch to start
        state = (list(worker.pending), list(worker.dirty), worker.sessions, session.busy)
        await worker.stop()
        return state

    pending, dirty, sessions, busy = run(body())
    assert calls == [1]
    assert (pending, dirty, sessions, busy) == ([], [], [], False)


def test_beam_search_server_with_per_stream_hotwords(kaldi_model, utterances):
    """serve --decoding beam: a stream's start message may carry its own hotwords; each
    stream gets what the engine gives it alone (with / without them); a phrase the
    tokenizer cannot encode closes that stream with 1008 and the reason."""
    recognizer = StreamingRecognizer(kaldi_model, CONFIG, decoding="beam", beam=4)
    plain = recognizer.transcribe(utterances[0].wave)[0].result.text.strip()
    word = plain.split()[0]
    phrases = [f"{word} :3.0", plain.split()[-1]]
    state = recognizer.init_state(1)
    recognizer.set_hotwords(state, phrases)
    recognizer.accept_audio(state, utterances[1].wave[None])
    recognizer.finalize(state)
    boosted = state.result.text.strip()

    async def body(server):
        async def with_hotwords():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
                await ws.send(json.dumps({"hotwords": phrases}))
                await ws.send(utterances[1].wave.numpy().tobytes())
                await ws.send("Done")
                results = [json.loads(m) for m in [m async for m in ws] if m != "Done!"]
                return results[-1]["text"]

        async def bad():
            async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
                await ws.send(json.dumps({"hotwords": ["ÆØÅ"]}))
                return await close_frame(ws)

        return await asyncio.gather(
            stream_to_server(server.port, utterances[0].wave.numpy(), seconds_per_message=0.1, pace=0.0),
            with_hotwords(), bad())

    server_recognizer = StreamingRecognizer(kaldi_model, CONFIG, decoding="beam", beam=4)

    async def serve_beam():
        server = await start_server(server_recognizer, ServeConfig(port=0))
        try:
            return await body(server)
        finally:
            await server.shutdown()

    first, second, closed = run(serve_beam())
    assert first["text"] == plain and len(plain) > 10
    assert second == boosted
    assert closed.code == 1008 and "cannot encode 'ÆØÅ'" in closed.reason

    async def greedy(server):
        async with websockets.connect(f"ws://127.0.0.1:{server.port}") as ws:
            await ws.send(json.dumps({"hotwords": [word]}))
            return await close_frame(ws)

    closed = run(serving(kaldi_model, greedy))
    assert closed.code == 1008 and "hotwords need beam search" in closed.reason


def raw_get(port: int, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """``GET path`` over a plain socket: the status, every header line as sent (repeats
    kept, which urllib and websockets' client would fold) and the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        received = b""
        while chunk := client.recv(65536):  # the server closes after its response
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines)]
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("path, status, content_type", [
    ("/", 200, "text/html; charset=utf-8"),
    ("/worklet.js", 200, "text/javascript; charset=utf-8"),
    ("/metrics", 200, "text/plain; version=0.0.4; charset=utf-8"),
    ("/healthz", 200, "text/plain; charset=utf-8"),
    ("/healthz?probe=1", 200, "text/plain; charset=utf-8"),
    ("/nonexistent", 404, "text/plain; charset=utf-8"),
])
def test_each_http_response_has_exactly_one_content_type(kaldi_model, path, status, content_type):
    async def body(server):
        return await asyncio.get_running_loop().run_in_executor(None, raw_get, server.port, path)

    code, headers, payload = run(serving(kaldi_model, body, max_batch=2, workers=1))
    assert code == status
    assert [v for k, v in headers if k == "content-type"] == [content_type]
    assert [v for k, v in headers if k == "content-length"] == [str(len(payload))]
    names = [k for k, _ in headers]
    assert len(names) == len(set(names)), headers
    if status == 404:
        assert b"/nonexistent" in payload and b"WebSocket streams: any path" in payload


def test_a_websocket_on_any_path_is_a_stream(kaldi_model, utterances, expected):
    """sherpa-onnx's server takes a stream on whatever path the client names; so do we
    (only plain HTTP requests get the pages, /healthz, /metrics or 404)."""
    async def body(server):
        results = []
        for path in ("/nonexistent", "/healthz"):
            async with websockets.connect(f"ws://127.0.0.1:{server.port}{path}") as ws:
                await ws.send(utterances[0].wave.numpy().tobytes())
                await ws.send("Done")
                results.append([m async for m in ws])
        return results

    for messages in run(serving(kaldi_model, body, max_batch=2, workers=1)):
        assert messages[-1] == "Done!"
        assert json.loads(messages[-2])["text"] == expected[0]


def test_a_server_on_a_pre_bound_listener_answers_and_decodes(kaldi_model, utterances, expected):
    """``bind_listener`` before the model loads; the server then serves on that port.
    Until it serves, a client is refused at once (the port is bound, not listening)."""
    config = ServeConfig(port=0, max_batch=2, workers=1)
    listener = bind_listener(config)
    port = listener.port
    assert port > 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    async def body():
        server = await start_server(StreamingRecognizer(kaldi_model, CONFIG), config, listener)
        try:
            loop = asyncio.get_running_loop()
            health = await loop.run_in_executor(None, lambda: urllib.request.urlopen(
                f"http://127.0.0.1:{port}/healthz").read().decode())
            result = await stream_to_server(port, utterances[0].wave.numpy(), seconds_per_message=0.1, pace=0.0)
            return server.port, server.url, health, result
        finally:
            await server.shutdown()

    served_port, url, health, result = run(body())
    assert served_port == port and url == f"ws://127.0.0.1:{port}"
    assert health == "ok\n"
    assert result["text"] == expected[0]


def test_a_busy_port_is_refused_in_one_line():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError) as refused:
            bind_listener(ServeConfig(port=port))
        assert str(refused.value) == (f"cannot listen on 127.0.0.1:{port}: address already in use "
                                      "(another server? pick --port)")
        with pytest.raises(ConfigError, match="without --reuse-port"):
            bind_listener(ServeConfig(port=port, reuse_port=True))


def test_reuse_port_lets_two_servers_share_a_port():
    first = bind_listener(ServeConfig(port=0, reuse_port=True))
    try:
        second = bind_listener(ServeConfig(port=first.port, reuse_port=True))
        second.close()
    finally:
        first.close()


@pytest.mark.parametrize("port", [99999, 65536, -1])
def test_a_port_out_of_range_is_refused(port):
    message = f"--port {port} is not a TCP port (0-65535)"
    with pytest.raises(ConfigError) as refused:
        ServeConfig(port=port).check()
    assert str(refused.value) == message
    with pytest.raises(ConfigError, match="is not a TCP port"):
        bind_listener(ServeConfig(port=port))


def test_an_unreadable_certificate_is_refused_before_listening(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=f"--certfile {cert} / --keyfile {cert}: cannot load them"):
        bind_listener(ServeConfig(port=0, certfile=str(cert), keyfile=str(cert)))
    with pytest.raises(ConfigError, match="cannot load them"):
        bind_listener(ServeConfig(port=0, certfile=str(tmp_path / "missing.pem"), keyfile=str(cert)))
