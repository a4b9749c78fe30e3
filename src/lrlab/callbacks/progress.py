"""A tqdm bar per epoch with the loss, lr and images/s (only when stderr is a terminal)."""

from __future__ import annotations

import sys
import time
from typing import Any

from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult
from lrlab.parallel import is_main_process


class ProgressBar(Callback):
    def __init__(self, enabled: bool, every_n_steps: int) -> None:
        self.enabled = enabled and sys.stderr.isatty() and is_main_process()
        self.every_n_steps = every_n_steps
        self.bar: Any = None

    def on_epoch_start(self, state: TrainState) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=state.epoch_length(state.epoch),
            initial=state.step_in_epoch,
            desc=f"epoch {state.epoch + 1}/{state.epochs}",
            unit="step",
            leave=False,
        )
        self.start, self.seen = time.perf_counter(), 0

    def on_step_end(self, state: TrainState, result: StepResult) -> None:
        if self.bar is None:
            return
        self.bar.update()
        self.seen += result.n
        if state.step % self.every_n_steps == 0:
            rate = self.seen / (time.perf_counter() - self.start)
            lr = state.optimizer.param_groups[0]["lr"]
            self.bar.set_postfix(
                loss=f"{result.mean_loss():.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}"
            )

    def on_train_epoch_end(self, state: TrainState) -> None:
        self.close()

    def on_fit_end(self, state: TrainState) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
