"""Callbacks that end a run early: `Divergence` (always on: the training loss became NaN/inf or
exceeded a threshold; status `diverged`) and `EarlyStopping` (`callbacks=early_stopping`: a
monitored metric has not improved for `patience` epochs; status `completed`)."""

from __future__ import annotations

import logging
import math
from typing import Any

from lrlab.engine.callbacks import Callback, StopTraining
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult
from lrlab.errors import ConfigError

log = logging.getLogger(__name__)

METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")
MODES = ("max", "min")


def check_monitor(owner: str, monitor: str, mode: str) -> None:
    if monitor not in METRICS:
        raise ConfigError(f"callbacks.{owner}.monitor={monitor!r} is not one of {list(METRICS)}")
    if mode not in MODES:
        raise ConfigError(f"callbacks.{owner}.mode={mode!r} is not one of {list(MODES)}")


def improves(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether `value` beats `best` by more than `min_delta` (NaN never improves)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


class EarlyStopping(Callback):
    def __init__(
        self, monitor: str = "val_acc", mode: str = "max", patience: int = 3, min_delta: float = 0.0
    ) -> None:
        check_monitor("early_stopping", monitor, mode)
        if patience < 1:
            raise ConfigError(f"callbacks.early_stopping.patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ConfigError(f"callbacks.early_stopping.min_delta must be >= 0, got {min_delta}")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, patience, min_delta
        self.best: float | None = None
        self.bad_epochs = 0

    def on_validation_end(self, state: TrainState) -> None:
        value = state.metrics[self.monitor]
        if improves(value, self.best, self.mode, self.min_delta):
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            state.stop.after_epoch = (
                f"early_stopping: {self.monitor} did not improve on {self.best:.4g} by more than "
                f"{self.min_delta:g} for {self.patience} epochs (epoch {state.epoch})"
            )
            log.info("%s", state.stop.after_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


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
