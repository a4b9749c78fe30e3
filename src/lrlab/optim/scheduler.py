"""`build_scheduler`: a `scheduler:` config as a torch `LRScheduler` stepped per optimizer step.

Conventions (all schedules):
- peak lr of a group = its `initial_lr` if set, else its `lr` at construction; a schedule
  multiplies every group's peak by the same factor, so the ratios between groups hold;
- durations are in epochs (fractions allowed), converted with `steps_per_epoch`;
- absolute lrs in the config (`base_lr`, `eta_min`, `min_lr`) refer to the optimizer's own lr
  (`optimizer.lr`); every group gets the same fraction of its own peak;
- past the planned number of steps a schedule holds its last planned step's value;
- other hyper-parameters (`params`: weight_decay, beta2, ...) follow schedules of their own,
  stepped with the lr (`lrlab.optim.param_schedules`);
- when the epochs have different numbers of steps (a resizing plan that changes the batch
  size), a step takes the schedule's value at the fractional epoch where it starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from lrlab.errors import ConfigError
from lrlab.optim.param_schedules import ParamTrack, build_track, read_key
from lrlab.optim.planned import Clock, epoch_clock, planned
from lrlab.optim.schedule_checks import (
    cycles_momentum,
    param_schedule_configs,
    reference_lr,
    scheduler_params,
)
from lrlab.optim.schedules import LrFn, MomFn, Plateau


def group_momentum(group: Mapping[str, Any]) -> float | None:
    """A param group's momentum: SGD/RMSprop `momentum` or Adam-family `betas[0]` (else None)."""
    if "betas" in group:
        return float(group["betas"][0])
    return float(group["momentum"]) if "momentum" in group else None


class Schedule(LRScheduler):
    """Sets every group's lr to `peak * lr_fn(t)` (and the momentum to `mom_fn(t)`) at step t.

    `step()` after every optimizer step; `epoch_end(val_loss)` after each validation (only a
    plateau schedule uses it). `state_dict()` holds the position, so a resumed run continues with
    exactly the values of an uninterrupted one.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lr_fn: LrFn,
        mom_fn: MomFn | None = None,
        plateau: dict[str, Any] | None = None,
        params: Sequence[ParamTrack] = (),
        clock: Clock | None = None,
    ) -> None:
        self.lr_fn, self.mom_fn = lr_fn, mom_fn
        self.params, self.clock = list(params), clock
        self._plateau: ReduceLROnPlateau | None = None
        if plateau is not None:
            # torch's ReduceLROnPlateau only acts on an optimizer's lr, so it drives a stand-in
            # one-parameter optimizer whose lr is the head lr the plateau logic would have set;
            # the real groups get that fraction of their own peaks (on top of any warmup).
            self._ref_lr = reference_lr(optimizer)
            stand_in = torch.optim.SGD([torch.zeros(1)], lr=self._ref_lr)
            self._plateau = ReduceLROnPlateau(stand_in, mode="min", **plateau)
        super().__init__(optimizer)  # sets initial_lr, then applies step 0 via self.step()

    def _plateau_factor(self) -> float:
        if self._plateau is None:
            return 1.0
        return self._plateau.optimizer.param_groups[0]["lr"] / self._ref_lr

    def _t(self) -> float:
        return self.last_epoch if self.clock is None else self.clock(self.last_epoch)

    def get_lr(self) -> list[float]:
        mult = self.lr_fn(self._t()) * self._plateau_factor()
        return [base * mult for base in self.base_lrs]

    def _apply_momentum(self) -> None:
        if self.mom_fn is not None:
            m = self.mom_fn(self._t())
            for group in self.optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (m, *group["betas"][1:])
                else:
                    group["momentum"] = m
        for track in self.params:
            track.apply(self.optimizer, self._t())

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
        self._apply_momentum()

    def step(self) -> None:  # type: ignore[override]
        super().step()
        self._apply_momentum()

    def param_values(self) -> dict[str, float]:
        """The scheduled hyper-parameters' current values in param group 0 (for the records)."""
        group = self.optimizer.param_groups[0]
        return {track.key: read_key(group, track.key) for track in self.params}

    def epoch_end(self, val_loss: float) -> None:
        if self._plateau is not None:
            self._plateau.step(val_loss)
            self._apply()  # a reduction takes effect from the next optimizer step

    def state_dict(self) -> dict[str, Any]:
        # Only plain data: the schedule functions are rebuilt from the config on resume.
        state: dict[str, Any] = {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "base_lrs": list(self.base_lrs),
        }
        if self._plateau is not None:
            state["plateau"] = self._plateau.state_dict()
            state["plateau_lr"] = self._plateau.optimizer.param_groups[0]["lr"]
        if self.params:
            state["param_bases"] = {track.key: list(track.bases) for track in self.params}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = state_dict["last_epoch"]
        self._step_count = state_dict["_step_count"]
        self.base_lrs = list(state_dict["base_lrs"])
        if self._plateau is not None:
            self._plateau.load_state_dict(dict(state_dict["plateau"]))
            self._plateau.optimizer.param_groups[0]["lr"] = state_dict["plateau_lr"]
        for track in self.params:
            track.bases = list(state_dict["param_bases"][track.key])
        self._apply()  # the groups' lr/momentum at the saved step, whatever was loaded before


COMMON_KEYS = ("name", "warmup_epochs", "warmup_start_factor", "params")


def build_scheduler(
    sched_cfg: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    epochs: int,
    epoch_steps: Sequence[int] | None = None,
    where: str = "scheduler",
) -> Schedule:
    """The `scheduler:` config as a `Schedule` over `epochs * steps_per_epoch` optimizer steps.

    Build it after the optimizer's lrs are final (e.g. after the LR finder): it reads each
    group's peak here. `epoch_steps`: the real optimizer steps of each epoch when they differ
    from `steps_per_epoch` (the last one holds for later epochs); the schedule then follows the
    fractional epoch. `where`: the config key named in errors."""
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"need steps_per_epoch, epochs >= 1, got {steps_per_epoch}, {epochs}")
    ref = reference_lr(optimizer)
    if not ref > 0:
        raise ConfigError(f"optimizer.lr={ref!r}: the schedule's peak must be > 0")
    name, params = scheduler_params(sched_cfg, ref, where)
    lr_fn, mom_fn = planned(name, params, steps_per_epoch, epochs, ref, where)
    if "cycle_momentum" in params and not cycles_momentum(params["cycle_momentum"], optimizer):
        mom_fn = None
    tracks = [
        build_track(key, node, optimizer, steps_per_epoch, epochs, where)
        for key, node in param_schedule_configs(dict(sched_cfg).get("params"), where).items()
    ]
    cycled = [t.key for t in tracks if t.key in ("momentum", "beta1") and mom_fn is not None]
    if cycled and (cycled[0] == "momentum" or "betas" in optimizer.defaults):
        raise ConfigError(
            f"{where}.params.{cycled[0]}: {where}={name} already cycles the momentum; "
            f"set {where}.cycle_momentum=false to schedule it in params"
        )
    plateau = None
    if name == "plateau":
        plateau = {k: params[k] for k in asdict(Plateau()) if k not in COMMON_KEYS}
    clock = epoch_clock(epoch_steps, steps_per_epoch)
    return Schedule(optimizer, lr_fn, mom_fn, plateau=plateau, params=tracks, clock=clock)
