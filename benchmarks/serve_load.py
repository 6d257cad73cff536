#!/usr/bin/env python3
"""Loopback load test of a streaming WebSocket server speaking sherpa-onnx's protocol:
`streamasr serve` or sherpa-onnx's own C++ server, side by side in one run.

    python benchmarks/serve_load.py --model results/demo_kaldi --manifest data/synthetic/test_voices.csv \
        --servers streamasr-onnx,sherpa-onnx --streams 50,100,150,200 --seconds 20 --chunk-ms 640

For each server and each N: N clients (one asyncio process, sharing the 2 cores with
the server) each send ``--seconds`` of test audio in real time (``--message-ms``
messages), then ``Done``. The table gives the partial-result latency (p50 / p95 / p99
over every result that brought new tokens: from sending the message that held the last
sample of the newest token's chunk to receiving the result), the final result's latency
after ``Done`` (a server that falls behind accumulates the run's backlog there), the
server's CPU use (cores, from /proc) beside the load generator's, the aggregate real-time factor (server CPU
seconds per second of audio) and resident memory at the end; then, per server, the
largest N whose partial-latency p95 stays below the chunk duration.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamasr.export.sherpa_check import (  # noqa: E402
    cached_sherpa_folder,
    free_port,
    load_manifest,
    load_test,
    sherpa_binary,
)
from streamasr.model import load_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import cpu_seconds, proc_status  # noqa: E402


def start(kind: str, args: argparse.Namespace, port: int) -> subprocess.Popen:
    left = str(args.left_chunks)
    if kind == "sherpa-onnx":
        model = load_model(args.model)
        folder = cached_sherpa_folder(model, args.chunk_ms, args.left_chunks)
        command = [sherpa_binary(), f"--port={port}", "--num-work-threads=2", "--num-io-threads=1",
                   f"--max-batch-size={args.max_batch}", "--num-threads=1", "--loop-interval-ms=10",
                   f"--log-file={os.devnull}", "--enable-endpoint=false",
                   f"--tokens={folder / 'tokens.txt'}", f"--encoder={folder / 'encoder.onnx'}",
                   f"--decoder={folder / 'decoder.onnx'}", f"--joiner={folder / 'joiner.onnx'}"]
    else:
        backend = kind.split("-", 1)[1]
        command = [sys.executable, "-m", "streamasr.cli", "serve", "--model", args.model, "--backend", backend,
                   "--port", str(port), "--chunk-ms", str(args.chunk_ms), "--left-chunks", left,
                   "--max-batch", str(args.max_batch), "--max-connections", "1000", "--threads", "2",
                   "--workers", str(args.workers)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--servers", default="streamasr-onnx,sherpa-onnx",
                        help="comma-separated: streamasr-torch, streamasr-onnx, sherpa-onnx")
    parser.add_argument("--streams", default="25,50,100")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--message-ms", type=float, default=320.0)
    parser.add_argument("--chunk-ms", type=float, default=640.0)
    parser.add_argument("--left-chunks", type=int, default=4)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="streamasr serve --workers (model threads)")
    parser.add_argument("--max-latency", type=float, default=1.5)
    parser.add_argument("--limit", type=int, default=20, help="test utterances looped as the streams' audio")
    args = parser.parse_args()
    waves = [u.wave.numpy() for u in load_manifest(args.manifest, args.limit)]
    rows = []
    for kind in [k.strip() for k in args.servers.split(",") if k.strip()]:
        port = free_port()
        process = start(kind, args, port)
        try:
            wait_listening(port, process)
            for streams in [int(n) for n in args.streams.split(",")]:
                before, started, client = cpu_seconds(process.pid), time.perf_counter(), time.process_time()
                result = load_test(port, waves, streams, args.seconds, message_seconds=args.message_ms / 1000,
                                   chunk_seconds=args.chunk_ms / 1000)
                used = cpu_seconds(process.pid) - before
                wall = time.perf_counter() - started
                cores = used / wall
                result.update(server=kind, cores=cores, client_cores=(time.process_time() - client) / wall, rss=proc_status(process.pid)[0], rtf=used / (streams * args.seconds))
                rows.append(result)
                print(f"{kind} {streams} streams: partial p95 {result['chunk_latency_p95']:.3f} s, final p95 "
                      f"{result['final_latency_p95']:.2f} s, {cores:.2f} cores (load generator "
                      f"{result['client_cores']:.2f})", flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"\n{args.chunk_ms:g} ms chunks, {args.left_chunks} left chunks; each stream {args.seconds:g} s of audio in "
          f"real time ({args.message_ms:g} ms messages)\n")
    print("| server | streams | partial latency p50 | p95 | p99 | final after Done: p95 | max | server CPU (cores) | "
          f"load generator CPU (cores) | aggregate RTF | server RSS (MB) | keeps up (final p95 <= "
          f"{args.max_latency:g} s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        keeps = "yes" if r["final_latency_p95"] <= args.max_latency else "no"
        print(f"| {r['server']} | {r['streams']} | {r['chunk_latency_p50']:.3f} s | {r['chunk_latency_p95']:.3f} s | "
              f"{r['chunk_latency_p99']:.3f} s | {r['final_latency_p95']:.2f} s | {r['final_latency_max']:.2f} s | "
              f"{r['cores']:.2f} | {r['client_cores']:.2f} | {r['rtf']:.4f} | {r['rss']:.0f} | {keeps} |")
    print()
    for kind in dict.fromkeys(r["server"] for r in rows):
        fits = [r["streams"] for r in rows if r["server"] == kind and r["chunk_latency_p95"] < args.chunk_ms / 1000]
        print(f"{kind}: largest N with partial-latency p95 below the chunk ({args.chunk_ms:g} ms): "
              f"{max(fits) if fits else 'none tried'}")


if __name__ == "__main__":
    main()
