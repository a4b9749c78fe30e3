"""The run's records as a callback: step and epoch rows in metrics.jsonl (and the trackers),
and summary.json, rewritten at the start, after every epoch and at the end."""

from __future__ import annotations

import logging
import time
from typing import Any

from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult
from lrlab.optim import group_lrs, group_momentum
from lrlab.tracking import RunRecorder

log = logging.getLogger(__name__)

# Summary fields a resumed run carries over from its checkpoint.
CARRIED = ("best_val_acc", "best_epoch", "final_val_acc", "final_val_loss", "lr_find")
# Outcomes a run cannot be resumed from: their summary says how far training went, checkpoint
# or not. Any other outcome (failed, interrupted, ...) says how far its checkpoint goes.
FINAL = ("completed", "diverged")


class RunRecords(Callback):
    """`summary` starts with the run's fixed facts (seed, overrides, versions, ...); `started`
    is when the run's process began (`time.perf_counter()`), so set-up time counts."""

    def __init__(
        self, recorder: RunRecorder, summary: dict[str, Any], log_every_n_steps: int, started: float
    ) -> None:
        self.recorder, self.summary = recorder, summary
        self.every = log_every_n_steps
        self.started, self.earlier_wall_time = started, 0.0
        self.closed = False
        self.position = (0, 0)  # (epochs, steps) of the state the callbacks last saw
        # The carried summary fields at each recent checkpoint's position (state_dict() is
        # called while a checkpoint is written): a run that ends without a checkpoint of its
        # last epoch reports what the checkpoint holds.
        self.at_checkpoint: dict[tuple[int, int], dict[str, Any]] = {}
        summary.setdefault("status", "running")
        for key in ("error", "final_val_acc", "best_val_acc", "best_epoch"):
            summary.setdefault(key, None)
        summary.setdefault("epochs_completed", 0)
        summary.setdefault("steps", 0)
        self.write()

    def wall_time(self) -> float:
        return round(self.earlier_wall_time + time.perf_counter() - self.started, 3)

    def write(self) -> None:
        self.summary["wall_time_s"] = self.wall_time()
        self.recorder.write_summary(self.summary)

    def close(self, status: str, error: str | None = None) -> None:
        """The final summary (idempotent: a failure after fit ended does not rewrite it)."""
        if self.closed:
            return
        self.closed = True
        self.summary.update(status=status, error=error, wall_time_s=self.wall_time())
        self.recorder.close(self.summary)

    # --- hooks

    def on_fit_start(self, state: TrainState) -> None:
        groups = state.optimizer.param_groups
        self.summary["lr_group_names"] = [g.get("name", str(i)) for i, g in enumerate(groups)]
        self.position = (state.epoch, state.step)  # a resumed run starts at its checkpoint
        self.at_checkpoint[self.position] = self.carried()
        self.update_position(state)
        self.write()

    def on_epoch_start(self, state: TrainState) -> None:
        self.epoch_start = time.perf_counter()

    def on_step_start(self, state: TrainState) -> None:
        self.last_lr = state.optimizer.param_groups[0]["lr"]  # what this step trains with
        if (state.step + 1) % self.every == 0:
            self.lrs = group_lrs(state.optimizer)
            self.momentum = group_momentum(state.optimizer.param_groups[0])
            # scheduled hyper-parameters (scheduler.params) besides momentum, in group 0
            values = getattr(state.scheduler, "param_values", dict)()
            self.params = {k: v for k, v in values.items() if k != "momentum"}

    def on_step_end(self, state: TrainState, result: StepResult) -> None:
        self.position = (state.epoch, state.step)
        if state.step % self.every:
            return
        spe = state.epoch_length(state.epoch)
        self.recorder.log(
            {
                "type": "step",
                "step": state.step,
                "epoch": round(state.epoch + state.step_in_epoch / spe, 6),
                "train_loss": result.mean_loss(),  # the only per-log-interval host sync
                "lr": self.lrs[0],
                "lr_groups": self.lrs,
                "momentum": self.momentum,
                **self.params,  # weight_decay, beta2, ... when scheduler.params schedules them
                **state.step_values,  # e.g. image_size and batch_size with a resizing plan
            }
        )

    def on_validation_end(self, state: TrainState) -> None:
        m = state.metrics
        row = {
            "type": "epoch",
            "epoch": state.epoch,
            "step": state.step,
            "train_loss": m["train_loss"],
            "train_acc": m["train_acc"],
            "val_loss": m["val_loss"],
            "val_acc": m["val_acc"],
            "epoch_time_s": round(time.perf_counter() - self.epoch_start, 3),
            "lr": self.last_lr,  # the epoch's last step's lr
        }
        self.recorder.log(row)
        log.info(
            "epoch %d/%d  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  (%.1fs)",
            state.epoch,
            state.epochs,
            m["train_loss"],
            m["train_acc"],
            m["val_loss"],
            m["val_acc"],
            row["epoch_time_s"],
        )
        s = self.summary
        if s["best_val_acc"] is None or m["val_acc"] > s["best_val_acc"]:
            s.update(best_val_acc=m["val_acc"], best_epoch=state.epoch)
        s.update(final_val_acc=m["val_acc"], final_val_loss=m["val_loss"])
        self.position = (state.epoch, state.step)

    def on_epoch_end(self, state: TrainState) -> None:
        self.update_position(state)
        self.write()  # a killed run still says how far it got

    def on_fit_end(self, state: TrainState) -> None:
        self.update_position(state)
        ckpt = state.last_checkpoint
        if state.status not in FINAL and ckpt is not None:
            # Ended past its checkpoint (a failure, a second Ctrl-C while saving): a resume
            # continues from the checkpoint, so the summary claims no more than it holds.
            at = (ckpt["epoch"], ckpt["step"])
            self.summary.update(self.at_checkpoint.get(at, {}))
            self.summary.update(epochs_completed=at[0], steps=at[1])
        if state.stop.after_epoch:
            self.summary["stopped_early"] = state.stop.after_epoch
        self.close(state.status, state.error)

    def update_position(self, state: TrainState) -> None:
        """How far the run got; never further than its newest checkpoint when there is one."""
        self.summary.update(epochs_completed=state.epoch, steps=state.step)
        if state.last_checkpoint is not None:
            self.summary["checkpoint"] = dict(state.last_checkpoint)

    # --- resume

    def carried(self) -> dict[str, Any]:
        return {k: self.summary.get(k) for k in CARRIED}

    def state_dict(self) -> dict[str, Any]:
        carried = self.carried()
        self.at_checkpoint[self.position] = carried
        for old in list(self.at_checkpoint)[:-4]:  # a few recent positions are enough
            del self.at_checkpoint[old]
        state = {"summary": carried, "wall_time_s": self.wall_time()}
        if hasattr(self, "last_lr"):  # a checkpoint after an epoch's last step, before its row
            state["last_lr"] = self.last_lr
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.summary.update({k: v for k, v in state["summary"].items() if v is not None})
        self.earlier_wall_time = float(state["wall_time_s"])
        if "last_lr" in state:
            self.last_lr = state["last_lr"]
