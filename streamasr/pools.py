"""Process pools that never outlive the command that started them.

Why: ``with ProcessPoolExecutor(...)`` only looks after its workers when its block
ends normally. Killed by SIGTERM, ``build-corpus`` exited 143 at once (the default
action runs no Python code) and left its 2 workers behind for good: parent pid 1,
665 MB each, blocked on a queue lock. Ctrl-C reached every process of the terminal's
process group, so each worker printed its own KeyboardInterrupt traceback, and an
exception in the parent waited for every queued task to finish before it surfaced.

:func:`worker_pool` is the one way this project starts worker processes. While it
is open:

* SIGTERM in the parent raises :class:`Terminated` (a ``SystemExit`` of status 143,
  128 + SIGTERM, what a shell reports for a process killed by SIGTERM) in the main
  thread, so the pool and every ``finally`` above it get to clean up; the previous
  handler comes back when the pool ends;
* any exception leaving the block (``Terminated``, ``KeyboardInterrupt`` from Ctrl-C,
  an error of the parent or one a task raised) cancels the queued tasks and stops the
  workers: each gets SIGTERM, which raises ``SystemExit`` inside the task it is
  running (its ``finally`` / ``with`` blocks run: temporary files are removed,
  ``subprocess.run`` kills the synthesiser it waits for) and then ends the worker
  before it takes another task; workers still alive after ``STOP_GRACE_S`` get
  SIGKILL. The parent returns from the block only when all of them are gone;
* workers ignore SIGINT: Ctrl-C is handled once, by the parent;
* on Linux each worker gets SIGTERM when the parent dies, so even a parent killed by
  SIGKILL takes its workers with it (``prctl(PR_SET_PDEATHSIG)``, or a pidfd for the
  ``forkserver`` start method, see :func:`_die_with_parent`). Best effort, Linux only;
  the kernel sends the death signal when the *thread* that started the worker ends, so
  use the pool from the thread that opened it (the pools here run in the command's
  main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

# Seconds a stopped worker has to unwind its task before it gets SIGKILL: synthesising
# or converting one file takes well under that.
STOP_GRACE_S = 5.0
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class Terminated(SystemExit):
    """SIGTERM arrived while a :func:`worker_pool` was open. A ``SystemExit`` so that
    ``except Exception`` does not swallow it and, uncaught, the interpreter exits with
    status 143 (128 + SIGTERM) without a traceback."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


# ------------------------------------------------------------------ worker side
# State of one worker process (each has its own copy).
_stopping = False  # SIGTERM arrived: no further task starts
_in_task = False  # a task is running: SIGTERM unwinds it instead of exiting at once


def _on_sigterm_in_worker(signum: int, frame: FrameType | None) -> None:
    global _stopping
    if _stopping:  # a second SIGTERM (the pool's own clean-up): let the first unwind
        return
    _stopping = True
    if not _in_task:
        os._exit(128 + signum)
    raise SystemExit(128 + signum)


def _run_task(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Runs ``function`` in a worker; after a SIGTERM the worker exits instead of
    returning to ``concurrent.futures``, which would catch the ``SystemExit`` (it
    catches every exception of a task) and go on with the next task."""
    global _in_task
    if _stopping:
        os._exit(128 + signal.SIGTERM)
    _in_task = True
    try:
        return function(*args, **kwargs)
    finally:
        _in_task = False
        if _stopping:
            os._exit(128 + signal.SIGTERM)


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGTERM to this worker when the pool's parent ends. A worker forked or
    spawned by the parent asks the kernel (``prctl(PR_SET_PDEATHSIG)``); one forked by
    multiprocessing's fork server (``forkserver``, Python 3.14's default) has the fork
    server as parent, which lives as long as any of its workers does, so a thread
    waits on a pidfd of the pool's parent instead. Elsewhere: nothing."""
    if not sys.platform.startswith("linux"):
        return
    if os.getppid() != parent_pid:
        _watch_parent(parent_pid)
        return
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # it died before the request: nothing would be sent
        os._exit(128 + signal.SIGTERM)


def _watch_parent(parent_pid: int) -> None:
    try:
        parent = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        os._exit(128 + signal.SIGTERM)
    except (AttributeError, OSError):  # kernel before 5.3
        return

    def wait_for_parent() -> None:
        select.select([parent], [], [])  # readable once the process has ended
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait_for_parent, name="watch-pool-parent", daemon=True).start()


def _start_worker(parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    # A forked worker starts with the parent's handlers: SIGTERM would raise Terminated.
    signal.signal(signal.SIGTERM, _on_sigterm_in_worker)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


class _WorkerPoolExecutor(ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` whose tasks run under :func:`_run_task` (``map`` goes
    through ``submit``, so it is covered too)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return super().submit(functools.partial(_run_task, fn), *args, **kwargs)


# ------------------------------------------------------------------ parent side
class _ParentSignals:
    """SIGTERM -> :class:`Terminated` while the pool is open; SIGTERM and SIGINT held
    back (and handed on afterwards) while the workers are being stopped, so that a
    second Ctrl-C cannot leave them half stopped. Signal handlers can only be set in
    the main thread: elsewhere this does nothing."""

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.holding = False
        self.held: list[int] = []

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.holding:
            self.held.append(signum)
            return
        raise Terminated()

    def _install(self, signum: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        current = signal.getsignal(signum)
        # SIG_IGN: someone chose to ignore it (nohup); None: a handler set outside
        # Python, which could not be put back.
        if current in (signal.SIG_IGN, None):
            return
        self.previous[signum] = current
        signal.signal(signum, self._handle)

    def _restore(self, signum: int) -> None:
        if signum in self.previous:
            signal.signal(signum, self.previous.pop(signum))

    def install(self) -> None:
        self._install(signal.SIGTERM)

    @contextlib.contextmanager
    def holding_back(self) -> Iterator[None]:
        self._install(signal.SIGINT)
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            self._restore(signal.SIGINT)

    def restore(self, handing_on: bool) -> None:
        """Previous handlers back; then, if ``handing_on``, the signals held back are
        raised again for them (not when the pool already ends because of a signal)."""
        self._restore(signal.SIGTERM)
        held, self.held = self.held, []
        if handing_on:
            for signum in dict.fromkeys(held):
                signal.raise_signal(signum)


def _stop_workers(executor: ProcessPoolExecutor, grace_s: float) -> int:
    """Cancels the queued tasks and ends every worker (SIGTERM, SIGKILL after
    ``grace_s``). ``shutdown(cancel_futures=True)`` alone lets running tasks finish and
    waits for them, so the processes are stopped directly. Returns how many were
    running."""
    # Private, stable since Python 3.9: {pid: Process}; both are cleared by shutdown().
    processes = list((getattr(executor, "_processes", None) or {}).values())
    manager = getattr(executor, "_executor_manager_thread", None)
    executor.shutdown(wait=False, cancel_futures=True)
    running = [process for process in processes if process.exitcode is None]
    for process in running:
        process.terminate()
    # A process's sentinel becomes ready when it ends. Its exit status is no use here:
    # the executor's own thread reaps workers too, and Process.is_alive() says True
    # for one that thread has just reaped.
    left = _wait_ended(running, grace_s)
    for process in left:
        logger.warning("worker process %d did not stop within %.0f s of SIGTERM: killing it", process.pid, grace_s)
        process.kill()
    _wait_ended(left, grace_s)
    if manager is not None:  # it notices the workers ended and marks the pool broken
        manager.join(grace_s)
    return len(running)


def _wait_ended(processes: list[multiprocessing.process.BaseProcess], timeout_s: float
                ) -> list[multiprocessing.process.BaseProcess]:
    """Waits up to ``timeout_s`` for ``processes`` to end; returns those still running."""
    pending = {process.sentinel: process for process in processes}
    deadline = time.monotonic() + timeout_s
    while pending and (remaining := deadline - time.monotonic()) > 0:
        for sentinel in multiprocessing.connection.wait(list(pending), remaining):
            pending.pop(sentinel)  # type: ignore[call-overload]
    return list(pending.values())


@contextlib.contextmanager
def worker_pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    start_method: str | None = None,
    stop_grace_s: float = STOP_GRACE_S,
) -> Iterator[ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` of ``workers`` processes whose workers end with it,
    whatever ends the block (see the module docstring).

    ``initializer(*initargs)`` runs in each worker after its signal set-up (it and
    the tasks must be picklable for ``start_method`` ``spawn``); ``start_method`` is
    multiprocessing's (``None``: the platform default). Ending normally waits for the
    workers as ``with ProcessPoolExecutor`` does; an exception stops them (within
    ``stop_grace_s`` + a moment) and propagates; SIGTERM propagates as
    :class:`Terminated` (exit status 143).
    """
    signals = _ParentSignals()
    signals.install()
    executor: ProcessPoolExecutor | None = None
    handing_on = True
    try:
        executor = _WorkerPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(start_method),
            initializer=_start_worker, initargs=(os.getpid(), initializer, tuple(initargs)),
        )
        yield executor
        executor.shutdown(wait=True)
    except BaseException as error:
        handing_on = not isinstance(error, (Terminated, KeyboardInterrupt))
        if executor is not None:
            with signals.holding_back():
                stopped = _stop_workers(executor, stop_grace_s)
            if isinstance(error, Terminated):
                logger.warning("SIGTERM: stopped %d worker processes, exiting with status %d",
                               stopped, error.code)
        raise
    finally:
        signals.restore(handing_on)
