"""The unit tier's own settings (tests/conftest.py holds the shared fixtures)."""

from __future__ import annotations

import pytest

from streamasr.serve.worker import BatchWorker

UNIT_WARM_UP_SECONDS = 0.1


@pytest.fixture(autouse=True)
def short_server_warm_up(monkeypatch):
    """Servers started by unit tests warm up on 0.1 s of audio per stream instead of 2 s:
    the same calls (every batch size, twice, on every model thread), without the
    decoding that only shapes onnxruntime's memory plans for a long soak (about 5 s per
    server start on 2 cores). End-to-end tests start servers with the full warm-up."""
    original = BatchWorker.warm_up

    async def warm_up(self, seconds: float = 2.0) -> None:
        await original(self, seconds=min(seconds, UNIT_WARM_UP_SECONDS))

    monkeypatch.setattr(BatchWorker, "warm_up", warm_up)
