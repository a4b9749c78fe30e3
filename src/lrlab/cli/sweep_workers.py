"""A parallel sweep's processes (joblib: a main process and its loky workers) stop together.

- A stop signal sent to the main process only (`kill PID`, `docker stop`) is passed on to the
  workers, as a Ctrl-C in a terminal reaches them all: their running jobs checkpoint and stop,
  and the jobs not started yet do not start. SIGINT is not passed on: a terminal's Ctrl-C
  reaches the workers already, and a second one would stop them at once, mid-step.
- A worker whose main process is gone (SIGKILL, out of memory) stops its job as on SIGTERM
  (checkpointed) and exits, instead of living on as an orphan that ignores SIGTERM.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from lrlab.engine.signals import StopSignals

log = logging.getLogger(__name__)

PARENT_POLL_S = 1.0  # how often a worker looks for its main process
_job_running = threading.Event()  # a worker's: a job is between its start and its end
_watching = False


def launcher_workers() -> list[int]:
    """The pids of this process's loky workers (joblib's process pool); [] without one."""
    try:
        from joblib.externals.loky import reusable_executor
    except ImportError:
        return []
    executor = reusable_executor._executor  # the one pool joblib's loky backend reuses
    return list(getattr(executor, "_processes", None) or {})


class ParallelSweepSignals(StopSignals):
    """The main process's stop signals in a parallel sweep: also sent on to the workers."""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        super()._handle(signum, frame)
        if signum == signal.SIGINT:
            return
        for pid in launcher_workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


@contextlib.contextmanager
def job_running() -> Iterator[None]:
    """Around a job in a worker: the parent watchdog waits for it to end before exiting."""
    _job_running.set()
    try:
        yield
    finally:
        _job_running.clear()


def watch_parent() -> None:
    """In a launcher's worker: start (once) a thread that stops this worker when its main
    process is gone (see the module docstring)."""
    global _watching
    if _watching:
        return
    _watching = True
    parent = os.getppid()
    threading.Thread(target=_watch, args=(parent,), name="lrlab-parent-watch", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    log.warning("the sweep's main process %d is gone: stopping this worker", parent)
    os.kill(os.getpid(), signal.SIGTERM)  # a running job checkpoints and stops
    while _job_running.is_set():
        time.sleep(0.1)
    os._exit(128 + signal.SIGTERM)  # no parent to hand a result to
