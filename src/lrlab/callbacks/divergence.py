"""Stop a run whose training loss became NaN/inf or exceeded a threshold (status `diverged`)."""

from __future__ import annotations

import math

from lrlab.engine.callbacks import Callback, StopTraining
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult


class Divergence(Callback):
    """Checks the loss every `every_n_steps` steps (when it is read anyway, for the step rows)
    and at every epoch's end."""

    def __init__(self, threshold: float, every_n_steps: int) -> None:
        self.threshold, self.every_n_steps = threshold, every_n_steps

    def check(self, loss: float, step: int) -> None:
        if not math.isfinite(loss) or loss > self.threshold:
            raise StopTraining(
                "diverged", f"training loss {loss} at step {step} (threshold {self.threshold})"
            )

    def on_step_end(self, state: TrainState, result: StepResult) -> None:
        if state.step % self.every_n_steps == 0:
            self.check(result.mean_loss(), state.step)

    def on_train_epoch_end(self, state: TrainState) -> None:
        self.check(state.metrics["train_loss"], state.step)
