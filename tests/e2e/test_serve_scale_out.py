"""Scale-out: two `streamasr serve` processes on one port (--reuse-port); the kernel
spreads connections over both, and every stream gets its full transcript."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from helpers.common import REPO
from streamasr.export.sherpa_check import free_port, load_manifest, stream_to_server


def test_two_processes_share_one_port(random_model_folder, tiny_corpus, tmp_path):
    port = free_port()
    processes = [subprocess.Popen([sys.executable, "-m", "streamasr.cli", "serve", "--model", str(random_model_folder),
                                   "--port", str(port), "--reuse-port", "--threads", "1", "--record-dir",
                                   str(tmp_path / f"process{index}")], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for index in range(2)]
    try:
        for process in processes:  # each prints its address once it listens (or dies: EOF)
            seen = []
            while not (seen and seen[-1].startswith("streamasr serve: ws://")):
                seen.append(process.stdout.readline())
                assert seen[-1], "server exited before listening:\n" + "".join(seen)[-2000:]
        waves = [u.wave.numpy() for u in load_manifest(tiny_corpus / "test_voices.csv")]

        async def many():
            return await asyncio.gather(*(stream_to_server(port, waves[i % len(waves)], pace=0.0) for i in range(16)))

        results = asyncio.run(many())
    finally:
        for process in processes:
            process.terminate()
        codes = [process.wait(timeout=30) for process in processes]
    assert codes == [0, 0]
    assert all(r["text"] for r in results)
    served = [len(list((tmp_path / f"process{index}").glob("*.wav"))) for index in range(2)]
    assert sum(served) == 16 and min(served) >= 1, served

