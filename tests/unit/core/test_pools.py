"""Worker pools (streamasr/pools.py) end their workers with the parent: SIGTERM (exit
143), Ctrl-C (handled once, by the parent: 130), an exception in the parent or in a
task, and the parent killed outright (Linux: the workers get SIGTERM). Stopped
workers unwind the task they run (its ``finally`` blocks run). Each test runs a real
parent process and checks /proc for survivors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.common import REPO
from helpers.processes import descendants, wait_gone, wait_until
from streamasr.pools import worker_pool

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; death signal is Linux-only")

# A parent with 2 workers, each running a task that sleeps 60 s (started-<pid> when it
# starts, unwound-<pid> from its finally); 4 more tasks wait in the queue. ``mode``:
# wait (for the results), raise (the parent fails once both tasks run), failing-task
# (the first task raises after 0.5 s). KeyboardInterrupt ends it as the CLI does (130).
PARENT = """
import os, sys, time
from streamasr.pools import worker_pool

def nap(folder):
    open(os.path.join(folder, f"started-{os.getpid()}"), "w").close()
    try:
        time.sleep(60)
    finally:
        open(os.path.join(folder, f"unwound-{os.getpid()}"), "w").close()

def fail(folder):
    time.sleep(0.5)
    raise ValueError("a task failed")

if __name__ == "__main__":
    mode, folder, start_method = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        with worker_pool(2, start_method=None if start_method == "default" else start_method) as pool:
            first = fail if mode == "failing-task" else nap
            tasks = [pool.submit(first, folder)] + [pool.submit(nap, folder) for _ in range(5)]
            if mode == "raise":
                while len([n for n in os.listdir(folder) if n.startswith("started-")]) < 2:
                    time.sleep(0.05)
                raise RuntimeError("the parent failed")
            for task in tasks:
                task.result()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
"""


def start_parent(tmp_path: Path, mode: str, start_method: str = "default") -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "parent.py"  # a file, not -c: spawn workers import it
    script.write_text(PARENT)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    parent = subprocess.Popen([sys.executable, str(script), mode, str(markers), start_method], env=env,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    return parent, markers


def names(folder: Path, prefix: str) -> set[str]:
    return {path.name.split("-", 1)[1] for path in folder.glob(f"{prefix}-*")}


def both_tasks_running(parent: subprocess.Popen, markers: Path) -> dict[int, str]:
    """Waits until both workers run a task; returns every process below the parent."""
    wait_until(lambda: len(names(markers, "started")) == 2 or parent.poll() is not None, 20, "both tasks to start")
    assert parent.poll() is None, parent.stderr.read()
    return descendants(parent.pid)


def finish(parent: subprocess.Popen, timeout_s: float = 15) -> tuple[int, str]:
    try:
        _, stderr = parent.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        parent.kill()
        _, stderr = parent.communicate()
        raise AssertionError(f"the parent was still running {timeout_s:.0f} s later:\n{stderr[-2000:]}")
    return parent.returncode, stderr


@pytest.mark.parametrize("start_method", ["default", "spawn"])
def test_sigterm_stops_the_workers_and_exits_143(tmp_path, start_method):
    parent, markers = start_parent(tmp_path, "wait", start_method)
    below = both_tasks_running(parent, markers)
    os.kill(parent.pid, signal.SIGTERM)  # the parent alone, as `kill PID` does
    returncode, stderr = finish(parent)
    assert returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM: stopped 2 worker processes" in stderr
    assert "Traceback" not in stderr, stderr
    assert not wait_gone(below, 5)
    assert names(markers, "unwound") == names(markers, "started")  # each running task's finally ran


def test_ctrl_c_is_handled_once_by_the_parent_and_stops_the_workers(tmp_path):
    parent, markers = start_parent(tmp_path, "wait")
    below = both_tasks_running(parent, markers)
    os.killpg(parent.pid, signal.SIGINT)  # what Ctrl-C does: every process of the group
    returncode, stderr = finish(parent)
    assert returncode == 130, stderr
    assert stderr.count("interrupted") == 1 and "Traceback" not in stderr, stderr  # workers ignore it
    assert not wait_gone(below, 5)
    assert names(markers, "unwound") == names(markers, "started")


def test_an_exception_in_the_parent_stops_the_workers_at_once(tmp_path):
    parent, markers = start_parent(tmp_path, "raise")
    below = both_tasks_running(parent, markers)
    started = time.monotonic()
    returncode, stderr = finish(parent)
    assert returncode == 1 and "RuntimeError: the parent failed" in stderr, stderr
    assert time.monotonic() - started < 10  # not after the 60 s tasks
    assert not wait_gone(below, 5)
    assert names(markers, "unwound") == names(markers, "started")


def test_a_failing_task_stops_the_other_workers_instead_of_waiting_for_the_queue(tmp_path):
    parent, markers = start_parent(tmp_path, "failing-task")
    wait_until(lambda: names(markers, "started") or parent.poll() is not None, 20, "a task to start")
    below = descendants(parent.pid)
    returncode, stderr = finish(parent)  # the queue holds 5 tasks of 60 s
    assert returncode == 1 and "ValueError: a task failed" in stderr, stderr
    assert not wait_gone(below, 5)


@pytest.mark.parametrize("start_method", ["default", "spawn", "forkserver"])
def test_workers_end_when_the_parent_is_killed(tmp_path, start_method):
    parent, markers = start_parent(tmp_path, "wait", start_method)
    below = both_tasks_running(parent, markers)
    os.kill(parent.pid, signal.SIGKILL)  # no Python code of the parent runs
    parent.communicate(timeout=10)
    assert not wait_gone(below, 5)
    wait_until(lambda: names(markers, "unwound") == names(markers, "started"), 5, "the tasks to unwind")


def _square(value: int) -> int:
    return value * value


def _handler(signum, frame) -> None:
    pass


def test_a_pool_that_ends_normally_gives_the_results_and_puts_back_the_sigterm_handler():
    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        before = descendants(os.getpid())  # e.g. multiprocessing's resource tracker, started by other tests
        with worker_pool(2) as pool:
            assert list(pool.map(_square, range(20), chunksize=4)) == [value * value for value in range(20)]
            workers = {pid: start for pid, start in descendants(os.getpid()).items() if pid not in before}
        assert signal.getsignal(signal.SIGTERM) is _handler
        assert not wait_gone(workers, 5)
    finally:
        signal.signal(signal.SIGTERM, previous)
