"""The checkpoint callbacks.

- `Checkpointing` (always on, `trainer.checkpoint`): `checkpoints/last.ckpt` after every epoch,
  every `checkpoint_every_n_steps` optimizer steps, and when a stop signal (SIGTERM, SIGUSR1,
  SIGINT) arrives: the run can always continue from where it stopped, mid-epoch included.
- `BestCheckpoint` (`callbacks=best_checkpoint`): `checkpoints/best.ckpt`, the epoch with the
  best monitored metric; with `save_top_k` > 1 the k best epochs are also kept as
  `checkpoints/top/epoch=NNN.ckpt`. Each is a full checkpoint:
  `trainer.resume=<run dir>/checkpoints/best.ckpt` continues from it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lrlab.callbacks.stopping import check_monitor, improves
from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult
from lrlab.errors import ConfigError

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


class BestCheckpoint(Callback):
    def __init__(self, monitor: str = "val_acc", mode: str = "max", save_top_k: int = 1) -> None:
        check_monitor("best_checkpoint", monitor, mode)
        if save_top_k < 1:
            raise ConfigError(
                f"callbacks.best_checkpoint.save_top_k must be >= 1, got {save_top_k}"
            )
        self.monitor, self.mode, self.save_top_k = monitor, mode, save_top_k
        self.top: list[tuple[float, int]] = []  # (value, epoch), best first

    def on_validation_end(self, state: TrainState) -> None:
        value = state.metrics[self.monitor]
        folder = state.run_dir / "checkpoints"
        best_before = self.top[0][0] if self.top else None
        ranked = sorted([*self.top, (value, state.epoch)], key=self._rank)
        self.top, dropped = ranked[: self.save_top_k], ranked[self.save_top_k :]
        # The files are saved after the update, so they hold this callback's new state.
        if improves(value, best_before, self.mode):
            state.checkpointer.save(folder / "best.ckpt", state)
            log.info("best.ckpt: %s %.4f at epoch %d", self.monitor, value, state.epoch)
        if self.save_top_k > 1:
            if (value, state.epoch) in self.top:
                state.checkpointer.save(self.top_path(folder, state.epoch), state)
            for _, epoch in dropped:
                self.top_path(folder, epoch).unlink(missing_ok=True)

    def _rank(self, entry: tuple[float, int]) -> tuple[float, int]:
        value, epoch = entry
        return (-value if self.mode == "max" else value, epoch)  # ties: the earlier epoch

    @staticmethod
    def top_path(folder: Path, epoch: int) -> Path:
        return folder / "top" / f"epoch={epoch:03d}.ckpt"

    def state_dict(self) -> dict[str, Any]:
        return {"top": [list(t) for t in self.top]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.top = [(float(v), int(e)) for v, e in state["top"]]
