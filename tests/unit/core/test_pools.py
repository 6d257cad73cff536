"""Worker pools (streamasr/pools.py) end their workers with the parent: SIGTERM (exit
143), Ctrl-C (handled once, by the parent: 130), an exception in the parent or in a
task, and the parent killed outright (Linux: the workers get SIGTERM). Stopped
workers unwind the task they run (its ``finally`` blocks run). Each test runs a real
parent process and checks /proc for survivors."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.common import REPO
from helpers.processes import descendants, survivors, wait_gone, wait_until
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


@pytest.fixture
def leftovers():
    """Processes a test saw below its parent; any still running at the end (a
    regression: orphaned workers) are killed by pid, so a failure leaves none behind."""
    seen: dict[int, str] = {}
    yield seen
    for line in survivors(seen):
        os.kill(int(line.split()[0]), signal.SIGKILL)


@dataclasses.dataclass
class Parent:
    """A running parent script: its process, its markers folder, its stderr (a file:
    orphaned workers would hold a pipe open and hang the test)."""

    process: subprocess.Popen
    markers: Path
    stderr_path: Path

    def names(self, prefix: str) -> set[str]:
        return {path.name.split("-", 1)[1] for path in self.markers.glob(f"{prefix}-*")}

    def wait_for_tasks(self, count: int, leftovers: dict[int, str]) -> dict[int, str]:
        """Waits until ``count`` tasks run; returns (and records) every process below it."""
        wait_until(lambda: len(self.names("started")) >= count or self.process.poll() is not None, 20,
                   f"{count} tasks to start")
        assert self.process.poll() is None, self.stderr_path.read_text()
        below = descendants(self.process.pid)
        leftovers.update(below)
        return below

    def finish(self, timeout_s: float = 15) -> tuple[int, str]:
        """Its exit status and stderr, once it has ended."""
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the parent was still running {timeout_s:.0f} s later:\n"
                                 f"{self.stderr_path.read_text()[-2000:]}")
        return self.process.returncode, self.stderr_path.read_text()


def start_parent(tmp_path: Path, mode: str, start_method: str = "default") -> Parent:
    script = tmp_path / "parent.py"  # a file, not -c: spawn workers import it
    script.write_text(PARENT)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen([sys.executable, str(script), mode, str(markers), start_method], env=env,
                                   stderr=stderr, start_new_session=True)
    return Parent(process, markers, stderr_path)


@pytest.mark.parametrize("start_method", ["default", "spawn"])
def test_sigterm_stops_the_workers_and_exits_143(tmp_path, start_method, leftovers):
    parent = start_parent(tmp_path, "wait", start_method)
    below = parent.wait_for_tasks(2, leftovers)
    os.kill(parent.process.pid, signal.SIGTERM)  # the parent alone, as `kill PID` does
    returncode, stderr = parent.finish()
    assert returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM: stopped 2 worker processes" in stderr
    assert "Traceback" not in stderr, stderr
    assert not wait_gone(below, 5)
    assert parent.names("unwound") == parent.names("started")  # each running task's finally ran


def test_ctrl_c_is_handled_once_by_the_parent_and_stops_the_workers(tmp_path, leftovers):
    parent = start_parent(tmp_path, "wait")
    below = parent.wait_for_tasks(2, leftovers)
    os.killpg(parent.process.pid, signal.SIGINT)  # what Ctrl-C does: every process of the group
    returncode, stderr = parent.finish()
    assert returncode == 130, stderr
    assert stderr.count("interrupted") == 1 and "Traceback" not in stderr, stderr  # workers ignore it
    assert not wait_gone(below, 5)
    assert parent.names("unwound") == parent.names("started")


def test_an_exception_in_the_parent_stops_the_workers_at_once(tmp_path, leftovers):
    parent = start_parent(tmp_path, "raise")
    below = parent.wait_for_tasks(2, leftovers)
    started = time.monotonic()
    returncode, stderr = parent.finish()
    assert returncode == 1 and "RuntimeError: the parent failed" in stderr, stderr
    assert time.monotonic() - started < 10  # not after the 60 s tasks
    assert not wait_gone(below, 5)
    assert parent.names("unwound") == parent.names("started")


def test_a_failing_task_stops_the_other_workers_instead_of_waiting_for_the_queue(tmp_path, leftovers):
    parent = start_parent(tmp_path, "failing-task")
    below = parent.wait_for_tasks(1, leftovers)
    returncode, stderr = parent.finish()  # the queue holds 5 tasks of 60 s
    assert returncode == 1 and "ValueError: a task failed" in stderr, stderr
    assert not wait_gone(below, 5)


@pytest.mark.parametrize("start_method", ["default", "spawn", "forkserver"])
def test_workers_end_when_the_parent_is_killed(tmp_path, start_method, leftovers):
    parent = start_parent(tmp_path, "wait", start_method)
    below = parent.wait_for_tasks(2, leftovers)
    os.kill(parent.process.pid, signal.SIGKILL)  # no Python code of the parent runs
    parent.process.wait(timeout=10)
    assert not wait_gone(below, 5)
    wait_until(lambda: parent.names("unwound") == parent.names("started"), 5, "the tasks to unwind")


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
