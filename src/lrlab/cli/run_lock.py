"""One process at a time trains a run dir: the second is refused in one line naming the first.

The lock is `flock` on the run dir itself, so the kernel releases it however the holder ends
(exit, exception, SIGKILL, out of memory): a dead process never leaves a stale lock. While
held, `LOCK_INFO` in the dir names the holder (pid, host, start), for the refusal's message;
a file left by a killed holder is only a note, overwritten by the next one. Children forked
while it is held (DataLoader workers) close their copy, so the lock ends with the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from lrlab.errors import ConfigError

LOCK_INFO = ".lock"
_held: set[int] = set()  # the lock fds of this process: a forked child closes its copies


def _close_in_child() -> None:
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_in_child)


def holder(run_dir: Path) -> str:
    """Who holds `run_dir`'s lock, as its note says ("process 123 on host-1, since ...")."""
    try:
        info = json.loads((run_dir / LOCK_INFO).read_text())
        return f"process {info['pid']} on {info['host']} (since {info['since']})"
    except (OSError, ValueError, KeyError):  # it has not written its note yet
        return "another process"


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir` for this process, or raise a ConfigError naming the holder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(
            f"{run_dir} is in use: {holder(run_dir)} is training it; wait for it to end or "
            "stop it, then re-run with trainer.resume=auto, or choose another hydra.run.dir / "
            "hydra.sweep.dir"
        ) from None
    _held.add(fd)
    note = run_dir / LOCK_INFO
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%F %T")}
    with contextlib.suppress(OSError):  # a read-only run dir: locked, without a note
        note.write_text(json.dumps(info) + "\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            note.unlink(missing_ok=True)
        _held.discard(fd)
        os.close(fd)  # releases the lock
