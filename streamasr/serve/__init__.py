"""``streamasr serve``: a WebSocket server that batches live streams across connections.

* ``config``: ``ServeConfig``, the server's settings (light: no torch);
* ``server``: the asyncio server (``websockets``), its protocol (sherpa-onnx's streaming
  server protocol, so its clients work unchanged), limits and graceful shutdown;
* ``worker``: the batch worker that runs the ready chunks of all connections as batches
  on the fixed-shape streaming state, on two model threads by default.

The names below are imported on first use (PEP 562), so that ``streamasr.serve.config``
can be read without loading the server, the model stack and torch.
"""

from __future__ import annotations

import importlib

_HOMES = {"ServeConfig": "config", "Listener": "server", "bind_listener": "server", "serve_forever": "server",
          "start_server": "server", "BatchWorker": "worker", "Session": "worker"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"streamasr.serve.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'streamasr.serve' has no attribute {name!r}")


__all__ = sorted(_HOMES)
