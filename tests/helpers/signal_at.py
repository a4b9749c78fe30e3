"""A callback that plays a scheduler: it sends a signal to its own process after a given
optimizer step (`+callbacks.stop._target_=tests.helpers.signal_at.SignalAt +callbacks.stop.step=N`),
in a torchrun run only in the process of rank `rank`."""

from __future__ import annotations

import os
import signal

from lrlab.engine.callbacks import Callback


class SignalAt(Callback):
    def __init__(self, step: int, signal: str = "SIGUSR2", rank: int = 0) -> None:
        self.step, self.signal, self.rank = step, signal, rank

    def on_step_end(self, state, result) -> None:
        if state.step == self.step and int(os.environ.get("RANK") or 0) == self.rank:
            os.kill(os.getpid(), signal.Signals[self.signal])
