#!/usr/bin/env python3
"""Soak test of `streamasr serve`: many connections that end in every way, then streams
for minutes; the server's memory and threads must stay flat.

    python benchmarks/serve_soak.py --model results/demo --manifest data/synthetic/test_voices.csv \
        --connections 1000 --minutes 10 --streams 50

Phase 1: ``--connections`` connections, ``--concurrency`` at a time, a third each
finished with ``Done`` (and its results read), abandoned (closed after some audio,
without ``Done``) and cut mid-message (half a WebSocket frame, then the TCP connection
aborted). Phase 2: ``--streams`` clients streaming test audio in real time for
``--minutes``. The server is a subprocess; its resident memory (VmRSS) and thread count
are read from /proc after a warm-up, after phase 1 and every minute of phase 2, and
``/metrics`` must show no stream left open at the end. Prints one table, then where
the resident memory is by kind of mapping at the warm-up, after each half of phase 1
and at the end (the heap, glibc's thread arenas, large anonymous mappings, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamasr.export.sherpa_check import free_port, load_manifest, stream_to_server  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _proc import memory_kinds, proc_status  # noqa: E402


def active_streams(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return float(re.search(r"^streamasr_active_streams (\S+)$", text, re.M).group(1))


async def one_connection(port: int, wave: np.ndarray, how: str) -> str:
    import websockets

    if how == "done":
        await stream_to_server(port, wave[: 16000], seconds_per_message=0.25, pace=0.0)
        return how
    ws = await websockets.connect(f"ws://127.0.0.1:{port}", close_timeout=1)
    await ws.send(wave[: 8000].astype(np.float32).tobytes())
    if how == "cut":  # half a masked binary frame (its header announces 4,000 bytes), then abort the TCP link
        ws.transport.write(bytes([0x82, 0xFE, 0x0F, 0xA0, 1, 2, 3, 4]) + b"\x00" * 1000)
        ws.transport.abort()
        return how
    await ws.close()  # abandoned: closed without Done
    return how


async def phase_one(port: int, waves: list, connections: int, concurrency: int) -> dict:
    limit = asyncio.Semaphore(concurrency)
    kinds = ["done", "abandon", "cut"]

    async def run(index: int) -> str:
        async with limit:
            try:
                return await one_connection(port, waves[index % len(waves)], kinds[index % 3])
            except Exception as error:  # a refused or broken client counts, it must not stop the soak
                return f"error: {type(error).__name__}"

    outcomes = await asyncio.gather(*(run(i) for i in range(connections)))
    return {kind: outcomes.count(kind) for kind in set(outcomes)}


async def phase_two(port: int, audio: np.ndarray, streams: int, seconds: float) -> list:
    async def run(index: int) -> dict:
        await asyncio.sleep(random.random())
        offset = (index * 7919 * 160) % len(audio)
        return await stream_to_server(port, np.roll(audio, -offset)[: int(seconds * 16000)],
                                      seconds_per_message=0.32, pace=0.32)

    return await asyncio.gather(*(run(i) for i in range(streams)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args()
    waves = [u.wave.numpy() for u in load_manifest(args.manifest, args.limit)]
    audio = np.concatenate(waves)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamasr.cli", "serve", "--model", args.model, "--backend",
                               args.backend, "--port", str(port), "--max-connections", str(4 * args.concurrency + 100),
                               "--threads", "2", "--max-batch", "32"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    rows, memory = [], []
    try:
        line = ""
        while not line.startswith("streamasr serve:"):
            line = server.stdout.readline()
            if not line:
                raise SystemExit("server exited before listening")
        # warm-up at the soak's own concurrency: batches as large as the soak's allocate
        # onnxruntime's and the allocator's high-water marks once
        warm = 3 * args.concurrency
        asyncio.run(phase_one(port, waves, warm, args.concurrency))
        rows.append((f"after warm-up ({warm} connections)", *proc_status(server.pid), active_streams(port), ""))
        memory.append(("after warm-up", memory_kinds(server.pid)))
        for half in range(2):  # two halves: a leak per connection grows in both
            started = time.perf_counter()
            count = args.connections // 2
            outcomes = asyncio.run(phase_one(port, waves, count, args.concurrency))
            time.sleep(2)
            rows.append((f"after {count * (half + 1)} connections ({time.perf_counter() - started:.0f} s)",
                         *proc_status(server.pid), active_streams(port), json.dumps(outcomes, sort_keys=True)))
            memory.append((f"after {count * (half + 1)} connections", memory_kinds(server.pid)))
        for minute in range(int(np.ceil(args.minutes))):
            seconds = min(60.0, 60 * (args.minutes - minute))
            results = asyncio.run(phase_two(port, audio, args.streams, seconds))
            latencies = [r["final_latency"] for r in results]
            rows.append((f"{args.streams} real-time streams, minute {minute + 1}", *proc_status(server.pid),
                         active_streams(port), f"final latency p95 {np.percentile(latencies, 95):.2f} s"))
            print(rows[-1], flush=True)
        memory.append(("end", memory_kinds(server.pid)))
    finally:
        server.terminate()
        code = server.wait(timeout=60)
    print(f"\nserver exit status after SIGTERM: {code}\n")
    print("| point | server RSS (MB) | server threads | open streams (/metrics) | notes |")
    print("|---|---|---|---|---|")
    for point, rss, threads, active, notes in rows:
        print(f"| {point} | {rss:.0f} | {threads} | {active:.0f} | {notes} |")
    names = list(memory[0][1]) if memory else []
    print("\nWhere the resident memory is (MB, /proc/PID/smaps; benchmarks/_proc.py memory_kinds):\n")
    print("| point | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for point, values in memory:
        print(f"| {point} | " + " | ".join(f"{values[n]:.0f}" for n in names) + " |")
    growth = rows[-1][1] - rows[0][1]
    print(f"\nRSS growth from the warm-up to the end: {growth:+.1f} MB; threads {rows[0][2]} -> {rows[-1][2]}")


if __name__ == "__main__":
    main()
