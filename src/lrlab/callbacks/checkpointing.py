"""`checkpoints/last.ckpt` after every epoch, every `checkpoint_every_n_steps` optimizer steps,
and when a stop signal (SIGTERM, SIGUSR1, SIGINT) arrives: the run can always continue from
where it stopped, mid-epoch included."""

from __future__ import annotations

import logging
from pathlib import Path

from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult

log = logging.getLogger(__name__)

LAST = Path("checkpoints") / "last.ckpt"


class Checkpointing(Callback):
    def __init__(self, every_n_steps: int | None = None) -> None:
        self.every_n_steps = every_n_steps

    def save(self, state: TrainState) -> None:
        state.checkpointer.save(state.run_dir / LAST, state)
        state.last_checkpoint = {"epoch": state.epoch, "step": state.step}

    def on_step_end(self, state: TrainState, result: StepResult) -> None:
        every = self.every_n_steps
        if state.stop.now is not None or (every and state.step % every == 0):
            self.save(state)
            if state.stop.now is not None:
                log.warning(
                    "checkpoint saved at epoch %d, step %d (%d of %d steps into the epoch)",
                    state.epoch + 1,
                    state.step,
                    state.step_in_epoch,
                    state.epoch_length(state.epoch),
                )

    def on_validation_end(self, state: TrainState) -> None:
        self.save(state)
