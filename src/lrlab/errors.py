"""The one exception type for bad user input (config values, paths, files, data), and the
one for a run dir that cannot be written."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class ConfigError(ValueError):
    """Raised before training starts; entry points print it as one line and exit non-zero."""


class RunDirError(Exception):
    """A file of the run cannot be written (disk full, read-only, over quota): the run stops
    with one line naming the file, not a traceback (its summary says `failed` if it can)."""

    def __init__(self, code: int, path: Path) -> None:
        super().__init__(f"cannot write {path}: {os.strerror(code)}")
        self.errno, self.path = code, path


# What "cannot write" means to a user: the disk or the dir, not a bug.
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def unwritable(error: BaseException, path: Path) -> RunDirError | None:
    """`error` (from writing `path`) as a RunDirError, or None when it is not about the disk
    or the dir. torch.save reports a full disk as a RuntimeError: the free space tells."""
    code = getattr(error, "errno", None)
    if code is None:
        try:
            full = shutil.disk_usage(path.parent).free < 1 << 20
        except OSError:
            full = False
        code = errno.ENOSPC if full else None
    if code not in UNWRITABLE:
        return None
    return RunDirError(code, path)
