"""`model.freeze` / `model.fine_tune` as a callback: the frozen state is set every epoch."""

from __future__ import annotations

import logging

from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState
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
