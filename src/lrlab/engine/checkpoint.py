"""Checkpoints: everything a run needs to continue exactly, mid-epoch included.

A checkpoint holds the model, optimizer, schedule and grad-scaler states, every RNG, the data
order of the current epoch (the loader generator's state at the epoch's start and how many
optimizer steps of it were taken), the epoch's running sums, each stateful callback's state and
the run's composed config (a resume compares it with its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lrlab.engine.callbacks import Callback, callback_states, load_callback_states, state_key
from lrlab.engine.state import EpochSums, TrainState
from lrlab.errors import ConfigError
from lrlab.parallel import is_main_process
from lrlab.utils import rng_state

FORMAT = 2  # format 1 (before the run's config and mid-epoch positions were stored): refused


class Checkpointer:
    """Saves a `TrainState` with the run's config, schedule plan and callbacks."""

    def __init__(
        self, config: dict[str, Any], plan: dict[str, int], callbacks: Sequence[Callback] = ()
    ) -> None:
        self.config, self.plan, self.callbacks = config, plan, list(callbacks)

    def payload(self, state: TrainState) -> dict[str, Any]:
        mid_epoch = state.step_in_epoch > 0
        gen = state.loader_generator
        loader_rng = state.epoch_start_generator_state if mid_epoch else gen and gen.get_state()
        return {
            "format": FORMAT,
            "config": self.config,
            **self.plan,  # planned_epochs, steps_per_epoch
            "epoch": state.epoch,
            "step": state.step,
            "step_in_epoch": state.step_in_epoch,
            "model": state.model.state_dict(),
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "scaler": state.step_fn.scaler.state_dict(),
            "rng": rng_state(),
            "loader_rng": loader_rng,
            "epoch_sums": {
                "loss_sum": state.sums.loss_sum.cpu(),
                "correct": state.sums.correct.cpu(),
                "seen": state.sums.seen,
            },
            "callbacks": callback_states(self.callbacks),
        }

    def save(self, path: Path, state: TrainState) -> None:
        if not is_main_process():  # data parallel: the replicas are identical; rank 0 saves
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.payload(state), tmp)
        tmp.replace(path)  # atomic: a crash mid-save keeps the previous checkpoint


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint at `path`, or a one-line ConfigError naming a missing, cut or foreign file."""
    if not path.is_file():
        raise ConfigError(f"trainer.resume: {path} is not a checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip errors, EOF, unpickling: all mean "not a usable checkpoint"
        why = (str(e).splitlines() or [type(e).__name__])[0]
        raise ConfigError(
            f"{path} is not a readable checkpoint (truncated or corrupt: {why}); "
            "resume from another checkpoint or start a new run"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError(
            f"{path} was written by another lrlab version (no checkpoint format {FORMAT}); "
            "it cannot be resumed: start a new run"
        )
    return state


def restore(state: TrainState, ckpt: dict[str, Any], callbacks: Sequence[Callback]) -> None:
    """Put `state` where the checkpoint was taken; the loop replays the epoch's data order
    and applies the saved RNG state before the next step (`loop.epoch_groups`). A callback with
    `on_restore(state, its saved state)` runs first: it may replace the optimizer and schedule
    with the ones the checkpoint holds (the optimizer switch)."""
    for cb in callbacks:
        if hasattr(cb, "on_restore"):
            cb.on_restore(state, ckpt["callbacks"].get(state_key(cb, callbacks)))
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    state.step_fn.scaler.load_state_dict(ckpt["scaler"])
    state.epoch, state.step, state.step_in_epoch = (
        ckpt["epoch"],
        ckpt["step"],
        ckpt["step_in_epoch"],
    )
    if state.loader_generator is not None and ckpt["loader_rng"] is not None:
        state.loader_generator.set_state(ckpt["loader_rng"])
        state.epoch_start_generator_state = ckpt["loader_rng"]
    state.pending_rng = ckpt["rng"]
    device = state.step_fn.device
    sums = ckpt["epoch_sums"]
    state.sums = EpochSums(sums["loss_sum"].to(device), sums["correct"].to(device), sums["seen"])
    load_callback_states(callbacks, ckpt["callbacks"])
    state.last_checkpoint = {"epoch": state.epoch, "step": state.step}
