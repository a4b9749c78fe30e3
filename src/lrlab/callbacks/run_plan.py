"""Callbacks that carry out the run's plan by epoch, each on when its config asks for it.

- `Freezing` (`model.freeze` / `model.fine_tune`): the frozen state, set every epoch.
- `Resizing` (`resizing:`): each epoch's training size (and batch size), and the size of every
  step in the records.
- `OptimizerSwitch` (`optimizer_switch:`): at the start of the switch epoch the run's optimizer
  and schedule are replaced by the second ones (fresh optimizer state, schedule over the
  remaining epochs). Checkpoints record whether the switch happened; a resumed run makes the
  same switch before the checkpoint's optimizer and schedule states are loaded into them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import BatchSampler

from lrlab.data.resizing import ResizedBatches, SizePlan
from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult
from lrlab.models.freezing import Freezer

log = logging.getLogger(__name__)


class Freezing(Callback):
    def __init__(self, freezer: Freezer) -> None:
        self.freezer = freezer

    def on_fit_start(self, state: TrainState) -> None:
        state.train_mode = self.freezer.train_mode  # frozen BatchNorm layers stay in eval mode

    def on_epoch_start(self, state: TrainState) -> None:
        if self.freezer.apply(state.epoch) and state.epoch > 0:  # fine_tune: the schedule goes on
            log.info(
                "fine_tune: all layer groups train from epoch %d (step %d)",
                state.epoch + 1,
                state.step,
            )


class Resizing(Callback):
    """Sets the epoch on the resized batches and, for a plan with batch sizes, the loader's
    batch size, before the epoch's first batch is drawn (a resumed run's too)."""

    def __init__(
        self, plan: SizePlan, batches: ResizedBatches, batch_sampler: BatchSampler | None = None
    ) -> None:
        self.plan, self.batches, self.batch_sampler = plan, batches, batch_sampler

    def on_epoch_start(self, state: TrainState) -> None:
        self.batches.epoch = state.epoch
        if self.batch_sampler is not None:
            self.batch_sampler.batch_size = self.plan.batch_size(state.epoch)
        stage = self.plan.stage(state.epoch)
        if stage is not None and (
            state.epoch == 0 or stage is not self.plan.stage(state.epoch - 1)
        ):
            log.info(
                "resizing: epoch %d trains at %d px, batch size %d",
                state.epoch + 1,
                stage.size,
                self.plan.batch_size(state.epoch),
            )

    def on_step_end(self, state: TrainState, result: StepResult) -> None:
        # the size of the step's last batch (with accumulation, multi-scale batches may differ)
        state.step_values["image_size"] = self.batches.last_size
        if self.batch_sampler is not None:
            state.step_values["batch_size"] = self.batch_sampler.batch_size


class OptimizerSwitch(Callback):
    def __init__(
        self, epoch: int, build: Callable[[], tuple[torch.optim.Optimizer, Any]], name: str = ""
    ) -> None:
        self.epoch, self.build, self.name = epoch, build, name
        self.switched = False

    def switch(self, state: TrainState) -> None:
        optimizer, scheduler = self.build()
        state.switch_optimizer(optimizer, scheduler)
        self.switched = True

    def on_epoch_start(self, state: TrainState) -> None:
        if not self.switched and state.epoch >= self.epoch:
            self.switch(state)
            log.info(
                "optimizer_switch: %s from epoch %d (step %d)",
                self.name or type(state.optimizer).__name__,
                state.epoch + 1,
                state.step,
            )

    def on_restore(self, state: TrainState, saved: dict[str, Any] | None) -> None:
        """Before a checkpoint's optimizer and schedule states load: the ones it holds."""
        if saved and saved.get("switched"):
            self.switch(state)

    def state_dict(self) -> dict[str, Any]:
        return {"switched": self.switched}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.switched = bool(state["switched"])
