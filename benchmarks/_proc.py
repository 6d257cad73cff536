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


def memory_kinds(pid: int) -> dict[str, float]:
    """Resident MB of ``pid`` by kind of mapping (/proc/PID/smaps): ``heap`` (the main
    malloc arena), ``thread arenas`` (glibc's per-thread heaps: anonymous mappings inside
    a 64 MB-aligned region), ``large anonymous`` (other anonymous mappings of 1 MB or
    more: big malloc blocks, onnxruntime's arena extensions, tensors), ``small
    anonymous`` and ``files`` (libraries, mapped models)."""
    kinds = {"heap": 0, "thread arenas": 0, "large anonymous": 0, "small anonymous": 0, "files": 0}
    kind = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].endswith(":"):  # a mapping's header: address range, perms, ..., name
            begin, end = (int(x, 16) for x in parts[0].split("-"))
            name = parts[5] if len(parts) > 5 else ""
            if name == "[heap]":
                kind = "heap"
            elif name:
                kind = "files"
            elif begin % (64 << 20) == 0 and end - begin <= 64 << 20:
                kind = "thread arenas"
            else:
                kind = "large anonymous" if end - begin >= 1 << 20 else "small anonymous"
        elif parts and parts[0] == "Rss:" and kind:
            kinds[kind] += int(parts[1]) / 1024
    return kinds
