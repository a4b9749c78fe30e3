"""`resizing:` as a callback: each epoch's training size (and batch size), and the size of every
step in the records."""

from __future__ import annotations

import logging

from torch.utils.data import BatchSampler

from lrlab.data.resizing import ResizedBatches, SizePlan
from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult

log = logging.getLogger(__name__)


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
