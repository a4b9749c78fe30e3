"""`TrainState`: everything the loop and its callbacks share about one training run.

What only one callback needs stays in that callback (the freezer, the EMA weights, the early
stopping's best value); the state holds what the loop reads and what callbacks hand each other
(`train_mode`, `eval_model`, `step_values`, `stop`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from lrlab.engine.step import Batch, StepResult, TrainStep


class StepSchedule(Protocol):
    """What the loop needs of a schedule (`lrlab.optim.Schedule` is one): a step per optimizer
    step, the validation loss per epoch, and its position for checkpoints."""

    def step(self) -> None: ...
    def epoch_end(self, val_loss: float) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


class StateSaver(Protocol):
    """What callbacks need of a checkpointer (`lrlab.engine.checkpoint.Checkpointer` is one)."""

    def save(self, path: Path, state: TrainState) -> None: ...


@dataclass
class EpochSums:
    """The current epoch's training sums, on the device (read once, at the epoch's end)."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int = 0

    @classmethod
    def zeros(cls, device: torch.device) -> EpochSums:
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))

    def add(self, result: StepResult) -> None:
        self.loss_sum += result.loss_sum
        self.correct += result.correct
        self.seen += result.n


@dataclass
class Stop:
    """How a run is asked to end early: by a callback after the current epoch (early stopping),
    or by a stop signal (SIGTERM, SIGUSR1, SIGINT) after the current optimizer step."""

    after_epoch: str | None = None  # why a callback ends the run after this epoch (the summary's)
    signal: tuple[str, str] | None = None  # (status, why), set by a signal handler at any time
    # The signal this step's (or epoch's) end acts on: taken once by the loop (`loop.publish_stop`)
    # before the callbacks run, so that they all see the same decision as the loop.
    now: tuple[str, str] | None = None


@dataclass
class TrainState:
    model: nn.Module
    scheduler: StepSchedule  # lrlab.optim.Scheduler, or a torch/timm scheduler it wraps
    step_fn: TrainStep  # owns the optimizer (`optimizer` below)
    train_batches: Iterable[Batch]  # one epoch's batches, iterated anew every epoch
    val_batches: Iterable[Batch]
    epochs: int  # train until this many epochs are done
    steps_per_epoch: int  # what the schedule counts an epoch as
    accumulate: int = 1  # batches per optimizer step
    loader_generator: torch.Generator | None = None  # draws each epoch's shuffling order
    train_mode: Callable[[], Any] | None = None  # model.train(), or the freezer's variant
    eval_model: nn.Module | None = None  # what validation runs (an EMA callback swaps it in)
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    step_in_epoch: int = 0  # optimizer steps taken in the current epoch
    epoch_start_generator_state: torch.Tensor | None = None  # to replay the epoch's order
    pending_rng: dict | None = None  # a mid-epoch resume's RNG, applied after the replay
    sums: EpochSums | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's
    stop: Stop = field(default_factory=Stop)
    run_dir: Path | None = None
    checkpointer: StateSaver | None = None  # saves this state (Checkpointing, stop signals)
    last_checkpoint: dict[str, int] | None = None  # position of the newest last.ckpt
    status: str = "running"
    error: str | None = None
    # Optimizer steps of each epoch when they differ from steps_per_epoch (a resizing plan that
    # changes the batch size); the last one holds for later epochs.
    epoch_steps: list[int] | None = None
    step_values: dict[str, Any] = field(default_factory=dict)  # callbacks' extra step-row values

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer the training step steps (one owner: `step_fn`)."""
        return self.step_fn.optimizer

    def switch_optimizer(self, optimizer: torch.optim.Optimizer, scheduler: StepSchedule) -> None:
        """Train with `optimizer` and its `scheduler` from the next step on (optimizer_switch)."""
        self.step_fn.optimizer, self.scheduler = optimizer, scheduler

    def epoch_length(self, epoch: int) -> int:
        """Optimizer steps in (0-based) `epoch`."""
        if not self.epoch_steps:
            return self.steps_per_epoch
        return self.epoch_steps[min(epoch, len(self.epoch_steps) - 1)]

    def __post_init__(self) -> None:
        if self.eval_model is None:
            self.eval_model = self.model
        if self.train_mode is None:
            self.train_mode = self.model.train
        if self.sums is None:
            self.sums = EpochSums.zeros(self.step_fn.device)
