"""Which processes descend from a given one, and whether they are gone, read from
/proc (Linux): the tests of streamasr/pools.py and of commands that use it check that
no worker outlives its command."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (index 0: state, 1: ppid, 19:
    start time), or None when the process is gone. The command name before them is
    in parentheses and may hold spaces, so the split starts after its last ')'."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def descendants(root: int) -> dict[int, str]:
    """{pid: start time} of every living process below ``root`` (children,
    grandchildren, ...); the start time tells a reused pid apart later."""
    parents: dict[int, int] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None and fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
            starts[int(entry)] = fields[19]
    found: dict[int, str] = {}
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found.update({pid: starts[pid] for pid in frontier})
    return found


def survivors(processes: dict[int, str]) -> list[str]:
    """Those of ``processes`` ({pid: start time}) still running, with their command lines."""
    alive = []
    for pid, start in processes.items():
        fields = _stat(pid)
        if fields is not None and fields[0] != "Z" and fields[19] == start:
            alive.append(f"{pid} {command_line(pid)}")
    return alive


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s:.0f} s for {what}")
        time.sleep(0.05)


def wait_gone(processes: dict[int, str], timeout_s: float) -> list[str]:
    """Waits up to ``timeout_s`` for every one of ``processes`` to end; returns those
    still running then."""
    deadline = time.monotonic() + timeout_s
    while (alive := survivors(processes)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive
