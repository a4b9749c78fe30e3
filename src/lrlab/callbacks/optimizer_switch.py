"""`optimizer_switch` as a callback: at the start of the switch epoch the run's optimizer and
schedule are replaced by the second ones (fresh optimizer state, schedule over the remaining
epochs). Checkpoints record whether the switch happened; a resumed run makes the same switch
before the checkpoint's optimizer and schedule states are loaded into them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState

log = logging.getLogger(__name__)


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
