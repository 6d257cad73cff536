"""A server process's resources from /proc (Linux): CPU seconds, resident memory,
threads. Shared by the serve benchmarks."""

from __future__ import annotations

import os
import re
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> tuple[float, int]:
    """Resident memory (MB) and thread count of ``pid``."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024
    threads = int(re.search(r"Threads:\s+(\d+)", text).group(1))
    return rss, threads
