"""``streamasr serve``: a WebSocket server that batches live streams across connections.

* ``server``: the asyncio server (``websockets``), its protocol (sherpa-onnx's streaming
  server protocol, so its clients work unchanged), limits and graceful shutdown;
* ``worker``: the batch worker that runs the ready chunks of all connections as batches
  on the fixed-shape streaming state, on two model threads by default.
"""

from streamasr.serve.server import ServeConfig, serve_forever, start_server
from streamasr.serve.worker import BatchWorker, Session

__all__ = ["BatchWorker", "ServeConfig", "Session", "serve_forever", "start_server"]
