"""A callback that plays a scheduler: it sends a signal to its own process after a given
optimizer step (`+callbacks.stop._target_=tests.helpers.signal_at.SignalAt +callbacks.stop.step=N`),
in a torchrun run only in the process of rank `rank`; with `group`, to its whole process group
(what Ctrl-C in a terminal does); with `once`, only if that file does not exist yet (it is
created), so that a re-run of the same command is not signalled again."""

from __future__ import annotations

import os
import signal

from lrlab.engine.callbacks import Callback


class SignalAt(Callback):
    def __init__(
        self,
        step: int,
        signal: str = "SIGUSR2",
        rank: int = 0,
        group: bool = False,
        once: str | None = None,
    ) -> None:
        self.step, self.signal, self.rank, self.group, self.once = step, signal, rank, group, once

    def on_step_end(self, state, result) -> None:
        if state.step == self.step and int(os.environ.get("RANK") or 0) == self.rank:
            if self.once is not None:
                try:
                    open(self.once, "x").close()
                except FileExistsError:
                    return
            if self.group:
                os.killpg(os.getpgid(0), signal.Signals[self.signal])
            else:
                os.kill(os.getpid(), signal.Signals[self.signal])
