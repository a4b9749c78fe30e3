"""A callback that plays a scheduler: it sends a signal to its own process after a given
optimizer step (`+callbacks.stop._target_=tests.helpers.signal_at.SignalAt +callbacks.stop.step=N`)."""

from __future__ import annotations

import os
import signal

from lrlab.engine.callbacks import Callback


class SignalAt(Callback):
    def __init__(self, step: int, signal: str = "SIGUSR2") -> None:
        self.step, self.signal = step, signal

    def on_step_end(self, state, result) -> None:
        if state.step == self.step:
            os.kill(os.getpid(), signal.Signals[self.signal])
