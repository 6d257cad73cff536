"""``streamasr serve``'s settings: limits, address, TLS. Light (no torch, no websockets),
so that the command line shows their defaults without loading the server."""

from __future__ import annotations

import dataclasses
from typing import Optional

from streamasr.errors import ConfigError

TCP_PORTS = range(0, 65536)  # 0: the kernel picks a free port


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
    # seconds a close waits for the client's closing handshake (websockets' close_timeout,
    # default 10) before dropping the TCP connection; the client has the close code and
    # reason by then. A stream closed for back-pressure is no longer read, so its client's
    # reply never arrives and every such close would otherwise take the full wait.
    close_timeout: float = 1.0
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
        if self.close_timeout <= 0:
            raise ConfigError(f"close_timeout must be > 0 seconds, got {self.close_timeout}")
        if bool(self.certfile) != bool(self.keyfile):
            raise ConfigError("--certfile and --keyfile go together")
        # checked here, not left to bind(): it raises OverflowError for 65536 and up
        if isinstance(self.port, bool) or not isinstance(self.port, int) or self.port not in TCP_PORTS:
            raise ConfigError(f"--port {self.port} is not a TCP port (0-65535)")
