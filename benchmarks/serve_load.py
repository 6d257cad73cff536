#!/usr/bin/env python3
"""Loopback load test of a streaming WebSocket server speaking sherpa-onnx's protocol:
`streamasr serve` or sherpa-onnx's own C++ server, side by side in one run.

    python benchmarks/serve_load.py --model results/demo_kaldi --manifest data/synthetic/test_voices.csv \
        --servers streamasr-onnx,sherpa-onnx --streams 50,100,150,200 --seconds 20 --chunk-ms 640

For each server and each N: N clients (one asyncio process, sharing the 2 cores with
the server) each send ``--seconds`` of test audio in real time (``--message-ms``
messages), then ``Done``; the table gives the latency of the final result after
``Done`` (mean, p95, max: a server that keeps up answers within a chunk or two, one
that falls behind accumulates the run's backlog), the server's CPU use (cores, from
/proc) and resident memory at the end. A level "keeps up" when the p95 stays below
``--max-latency``.
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(kind: str, args: argparse.Namespace, port: int) -> subprocess.Popen:
    left = str(args.left_chunks)
    if kind == "sherpa-onnx":
        model = load_model(args.model)
        folder = cached_sherpa_folder(model, args.chunk_ms, args.left_chunks)
        command = [sherpa_binary(), f"--port={port}", "--num-work-threads=2", "--num-io-threads=1",
                   f"--max-batch-size={args.max_batch}", "--num-threads=1", "--loop-interval-ms=10",
                   f"--log-file={os.devnull}",
                   f"--tokens={folder / 'tokens.txt'}", f"--encoder={folder / 'encoder.onnx'}",
                   f"--decoder={folder / 'decoder.onnx'}", f"--joiner={folder / 'joiner.onnx'}"]
    else:
        backend = kind.split("-", 1)[1]
        command = [sys.executable, "-m", "streamasr.cli", "serve", "--model", args.model, "--backend", backend,
                   "--port", str(port), "--chunk-ms", str(args.chunk_ms), "--left-chunks", left,
                   "--max-batch", str(args.max_batch), "--max-connections", "1000", "--threads", "2"]
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
    parser.add_argument("--max-batch", type=int, default=64)
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
                before, started = cpu_seconds(process.pid), time.perf_counter()
                result = load_test(port, waves, streams, args.seconds, message_seconds=args.message_ms / 1000)
                cores = (cpu_seconds(process.pid) - before) / (time.perf_counter() - started)
                result.update(server=kind, cores=cores, rss=rss_mb(process.pid))
                rows.append(result)
                print(f"{kind} {streams} streams: p95 {result['final_latency_p95']:.2f} s, {cores:.2f} cores",
                      flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(f"\n{args.chunk_ms:g} ms chunks, {args.left_chunks} left chunks; each stream {args.seconds:g} s of audio in "
          f"real time ({args.message_ms:g} ms messages)\n")
    print(f"| server | streams | final result after Done: mean | p95 | max | server CPU (cores) | server RSS (MB) | "
          f"keeps up (p95 <= {args.max_latency:g} s) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        keeps = "yes" if r["final_latency_p95"] <= args.max_latency else "no"
        print(f"| {r['server']} | {r['streams']} | {r['final_latency_mean']:.2f} s | {r['final_latency_p95']:.2f} s | "
              f"{r['final_latency_max']:.2f} s | {r['cores']:.2f} | {r['rss']:.0f} | {keeps} |")


if __name__ == "__main__":
    main()
