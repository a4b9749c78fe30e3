"""Hydra's log file (`<run dir>/train.log`), which a run dir that cannot be written goes without.

With `logging.FileHandler`, a read-only run dir fails Hydra's logging set-up with a traceback
before lrlab can say what is wrong (or report a finished run there, exit 0), and a full disk
prints a traceback for every line logged. This handler drops the file instead: the console
still shows every line, and lrlab reports the dir in one line when it must write there.
Names that are not UTF-8 are written with backslash escapes instead of failing.
"""

from __future__ import annotations

import logging


class RunLogFile(logging.FileHandler):
    def __init__(
        self,
        filename: str,
        mode: str = "a",
        encoding: str | None = None,
        delay: bool = False,
        errors: str | None = "backslashreplace",
    ) -> None:
        self.unwritable = False
        try:
            super().__init__(filename, mode, encoding, delay, errors)
        except OSError:  # read-only or full: no log file (the console keeps every line)
            super().__init__(filename, mode, encoding, delay=True, errors=errors)
            self.unwritable = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.unwritable:
            return
        try:
            super().emit(record)
        except OSError:
            self.unwritable = True

    def handleError(self, record: logging.LogRecord) -> None:
        self.unwritable = True  # a full disk: stop writing, without a traceback per line
