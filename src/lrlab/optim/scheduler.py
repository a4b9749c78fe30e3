"""`build_scheduler`: the `scheduler:` config applied per optimizer step.

The node is a schedule by `_target_` (conf/scheduler/) plus three keys of lrlab's own:
`warmup_epochs`, `warmup_start_factor` (a linear warmup of the lr first) and `params` (other
param-group keys -> their schedules: weight_decay, momentum, beta1, beta2, ...). A torch
`LRScheduler` (or timm's) by `_target_` is stepped as it is (`TorchScheduler`).

`Scheduler` owns, for every schedule: each group's peak (its `initial_lr`, else its `lr`, as
torch); the warmup, linear from `warmup_start_factor` x the first lr (onecycle's and clr's
momentum holds its first value meanwhile); the last planned value past the plan (a resumed run
with more epochs); the epoch clock (epochs of different step counts: a step takes the value at
the fractional epoch where it starts); and a `state_dict` with which a resumed run continues
with exactly the values of an uninterrupted one.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import torch

from lrlab.errors import ConfigError
from lrlab.optim.schedules import Curve, OnMetric, Phases, Plan, Schedule, number, steps
from lrlab.utils import import_target

RESERVED_KEYS = ("warmup_epochs", "warmup_start_factor", "params")  # not the target's arguments
SCALED_KEYS = ("lr", "weight_decay")  # multiply each group's own value; others: one for all
BELOW_ONE = ("momentum", "beta1", "beta2")  # values that must stay in [0, 1)
TORCH_HINT = "lrlab's keys are for lrlab schedules (torch's own: e.g. SequentialLR, LinearLR)"
Clock = Callable[[int], float]  # optimizer step -> the step the schedules are evaluated at


# --- param-group keys: `momentum` is SGD/RMSprop momentum or Adam's beta1 (as in metrics.jsonl)


def _beta(group: Mapping[str, Any], key: str) -> int | None:
    """The index in `betas` that `key` names in `group`, or None (a key of its own)."""
    if key in ("beta1", "beta2") or (key == "momentum" and "betas" in group):
        return 1 if key == "beta2" else 0
    return None


def read_key(group: Mapping[str, Any], key: str) -> float:
    i = _beta(group, key)
    return float(group[key] if i is None else group["betas"][i])


def write_key(group: MutableMapping[str, Any], key: str, value: float) -> None:
    i = _beta(group, key)
    if i is None:
        group[key] = value
    else:
        group["betas"] = tuple(value if j == i else b for j, b in enumerate(group["betas"]))


def _has_key(group: Mapping[str, Any], key: str) -> bool:
    if key in BELOW_ONE:
        return "betas" in group or (key == "momentum" and "momentum" in group)
    value = group.get(key)
    return isinstance(value, int | float) and not isinstance(value, bool)


def group_momentum(group: Mapping[str, Any]) -> float | None:
    """A param group's momentum: SGD/RMSprop `momentum` or Adam-family `betas[0]` (else None)."""
    return read_key(group, "momentum") if _has_key(group, "momentum") else None


def configured_value(optimizer: torch.optim.Optimizer, key: str, where: str) -> float:
    """The optimizer's own value of `key` (absolute values in a schedule refer to it); a
    one-line error when its param groups have no such number."""
    if key == "lr":
        lr, group = optimizer.defaults.get("lr"), optimizer.param_groups[0]
        return float(group.get("initial_lr", group["lr"]) if lr is None else lr)
    if key == "betas":
        raise ConfigError(f"{where}.params.betas: schedule beta1 and beta2 as keys of their own")
    if not all(_has_key(g, key) for g in optimizer.param_groups):
        numeric = [
            k for k, v in optimizer.param_groups[0].items() if k != "lr" and _has_key({k: v}, k)
        ]
        extra = ["beta1", "beta2"] if "betas" in optimizer.defaults else []
        raise ConfigError(
            f"{where}.params.{key}: {type(optimizer).__name__}'s param groups have no number "
            f"{key!r} (they have {sorted(numeric) + extra})"
        )
    return read_key(optimizer.defaults, key)


# --- the config: which schedule, checked before any work starts


def is_lrlab_schedule(node: Mapping[str, Any], where: str = "scheduler") -> bool:
    """True for an lrlab `Schedule` target, False for a torch/timm scheduler class."""
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not target:
        raise ConfigError(f"{where} needs a _target_ (a schedule, e.g. scheduler=onecycle)")
    cls = import_target(str(target), f"{where}._target_")
    return isinstance(cls, type) and issubclass(cls, Schedule)


def make_schedule(node: Mapping[str, Any], where: str, **kwargs: Any) -> Any:
    """Hydra's instantiate without lrlab's own keys; a ConfigError from the schedule's checks
    (`key=value: why`) comes back naming its place (`scheduler.key=value: why`)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    args = {k: v for k, v in plain.items() if k not in RESERVED_KEYS}  # type: ignore[union-attr]
    try:
        return instantiate(args, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ConfigError):
            raise ConfigError(f"{where}.{cause}") from None
        raise ConfigError(f"{where}: {cause or e}".splitlines()[0]) from None


def warmup_settings(node: Mapping[str, Any], where: str) -> tuple[float, float]:
    epochs = number(f"{where}.warmup_epochs", node.get("warmup_epochs", 0.0), ">= 0",
                    "a number of epochs")  # fmt: skip
    start = number(f"{where}.warmup_start_factor", node.get("warmup_start_factor", 0.0), "[0, 1]")
    return epochs, start


def param_schedules(node: Mapping[str, Any], where: str) -> dict[str, Schedule]:
    """`<where>.params`: param-group key -> its schedule (each checked)."""
    params = node.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}.params={params!r}: must map param-group keys to schedules")
    out = {}
    for key, sub in params.items():
        at = f"{where}.params.{key}"
        if key == "lr":
            raise ConfigError(f"{at}: the lr is {where} itself; params schedules the other keys")
        if not isinstance(sub, Mapping):
            raise ConfigError(f"{at}={sub!r}: must be a schedule (_target_: ...)")
        _refuse_lrlab_keys(sub, at, "a param-group key's schedule has none of its own")
        if not is_lrlab_schedule(sub, at):
            raise ConfigError(
                f"{at}._target_={sub['_target_']!r}: not an lrlab.optim.schedules.Schedule"
            )
        schedule = make_schedule(sub, at)
        if isinstance(schedule, OnMetric):
            raise ConfigError(
                f"{at}._target_={sub['_target_']!r}: it adapts the lr only; use another"
            )
        out[str(key)] = schedule
    return out


def check_scheduler(node: Mapping[str, Any], where: str = "scheduler") -> None:
    """The checks that need no optimizer (before any work starts): the schedules' own values."""
    if is_lrlab_schedule(node, where):
        make_schedule(node, where)
        warmup_settings(node, where)
        param_schedules(node, where)
    else:
        _refuse_lrlab_keys(node, where, TORCH_HINT)


def _refuse_lrlab_keys(node: Mapping[str, Any], where: str, why: str) -> None:
    """lrlab's keys (warmup, params) where they cannot apply; left at their defaults is fine."""
    given = [k for k in RESERVED_KEYS if node.get(k) not in (None, 0, 0.0) and node.get(k) != {}]
    if given:
        raise ConfigError(f"{where}.{given[0]}: {why}")


# --- applying schedules per optimizer step


@dataclass
class Track:
    """One param-group key: `fn(t)` times each group's base (scaled keys) or one base."""

    key: str
    fn: Curve
    scaled: bool
    bases: list[float]  # scaled: each group's value at build time; else: [the multiplier]
    schedule: Schedule


class Scheduler:
    """Sets every tracked param-group key from its schedule at each optimizer step: `step()`
    after every optimizer step, `epoch_end(val_loss)` after each validation."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, tracks: Sequence[Track], clock: Clock | None = None
    ) -> None:
        self.optimizer, self.tracks, self.clock = optimizer, list(tracks), clock
        self.step_count = 0
        self._apply()

    def _apply(self) -> None:
        t = self.step_count if self.clock is None else self.clock(self.step_count)
        groups = self.optimizer.param_groups
        for track in self.tracks:
            mult = track.fn(t)
            if isinstance(track.schedule, OnMetric):
                mult = mult * track.schedule.scale
            values = (
                [b * mult for b in track.bases]
                if track.scaled
                else [track.bases[0] * mult] * len(groups)
            )
            for group, value in zip(groups, values, strict=True):
                write_key(group, track.key, value)

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def epoch_end(self, val_loss: float) -> None:
        """A metric-driven schedule (plateau) observes the validation loss; a change takes
        effect from the next optimizer step."""
        observers = [t.schedule for t in self.tracks if isinstance(t.schedule, OnMetric)]
        for schedule in observers:
            schedule.observe(val_loss)
        if observers:
            self._apply()

    def param_values(self) -> dict[str, float]:
        """The scheduled keys besides the lr in param group 0 (for the records)."""
        group = self.optimizer.param_groups[0]
        return {t.key: read_key(group, t.key) for t in self.tracks if t.key != "lr"}

    def state_dict(self) -> dict[str, Any]:
        # Plain data only: the schedules are rebuilt from the config on resume.
        metric = {
            t.key: t.schedule.state_dict() for t in self.tracks if isinstance(t.schedule, OnMetric)
        }
        return {"step": self.step_count, "bases": {t.key: list(t.bases) for t in self.tracks},
                "metric": metric}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step_count = int(state["step"])
        for track in self.tracks:
            track.bases = list(state["bases"][track.key])
            if isinstance(track.schedule, OnMetric):
                track.schedule.load_state_dict(state["metric"][track.key])
        self._apply()  # the values at the saved step, whatever was loaded before


class TorchScheduler:
    """A torch `LRScheduler` or a timm scheduler by `_target_`, stepped per optimizer step:
    torch's `step()` (ReduceLROnPlateau: `step(val_loss)` after each epoch), timm's
    `step_update(optimizer steps)` and, after each epoch, `step(epochs, val_loss)`."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler, self.step_count, self.epoch_count = scheduler, 0, 0
        self.per_metric = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        self.timm = hasattr(scheduler, "step_update")

    def step(self) -> None:
        self.step_count += 1
        if self.timm:
            self.scheduler.step_update(self.step_count)
        elif not self.per_metric:
            self.scheduler.step()

    def epoch_end(self, val_loss: float) -> None:
        self.epoch_count += 1
        if self.timm:
            self.scheduler.step(self.epoch_count, val_loss)
        elif self.per_metric:
            self.scheduler.step(val_loss)

    def param_values(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step_count, "epoch": self.epoch_count,
                "scheduler": self.scheduler.state_dict()}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step_count, self.epoch_count = int(state["step"]), int(state["epoch"])
        self.scheduler.load_state_dict(dict(state["scheduler"]))
        if self.timm:  # timm sets the groups when stepped; torch's state holds its last lrs
            self.scheduler.step_update(self.step_count)
        else:
            groups = self.optimizer.param_groups
            for group, lr in zip(groups, self.scheduler.get_last_lr(), strict=True):
                group["lr"] = lr

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.scheduler.optimizer


def epoch_clock(epoch_steps: Sequence[int] | None, spe: int) -> Clock | None:
    """Step t of epoch e, j steps in, as the step (e + j / steps of epoch e) * spe of a run with
    `spe` steps in every epoch; None when every epoch has `spe` steps."""
    if not epoch_steps or all(s == spe for s in epoch_steps):
        return None
    lengths = list(epoch_steps)
    starts = list(accumulate(lengths, initial=0))

    def clock(t: int) -> float:
        if t >= starts[-1]:  # past the plan: the last epoch's length goes on
            e, j = divmod(t - starts[-1], lengths[-1])
            return (len(lengths) + e + j / lengths[-1]) * spe
        e = bisect.bisect_right(starts, t) - 1
        return (e + (t - starts[e]) / lengths[e]) * spe

    return clock


def _planned(fn: Curve, warmup: int, last: int, start: float | None = None) -> Curve:
    """`fn` from step `warmup` on, held at its last planned value from step `last` on; before:
    linear from `start` x its first value to it (the lr's warmup), or that first value held."""
    first = fn(0)

    def at(t: float) -> float:
        t = min(t, last)
        if t >= warmup:
            return fn(t - warmup)
        return first if start is None else first * (start + (1 - start) * t / warmup)

    return at


def build_scheduler(
    sched_cfg: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    epochs: int,
    epoch_steps: Sequence[int] | None = None,
    where: str = "scheduler",
) -> Scheduler | TorchScheduler:
    """The `scheduler:` config over `epochs * steps_per_epoch` optimizer steps.

    Build it after the optimizer's lrs are final (e.g. after the LR finder): it reads each
    group's peak here. `epoch_steps`: the real optimizer steps of each epoch when they differ
    from `steps_per_epoch` (the last one holds for later epochs). `where`: the config key named
    in errors."""
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"need steps_per_epoch, epochs >= 1, got {steps_per_epoch}, {epochs}")
    for group in optimizer.param_groups:  # the peak, as torch's LRScheduler stamps it
        group.setdefault("initial_lr", group["lr"])
    ref = configured_value(optimizer, "lr", where)
    if not ref > 0:
        raise ConfigError(f"optimizer.lr={ref!r}: the schedule's peak must be > 0")
    if not is_lrlab_schedule(sched_cfg, where):
        _refuse_lrlab_keys(sched_cfg, where, TORCH_HINT)
        return TorchScheduler(make_schedule(sched_cfg, where, optimizer=optimizer))
    schedule: Schedule = make_schedule(sched_cfg, where)
    warmup_epochs, start = warmup_settings(sched_cfg, where)
    total = steps_per_epoch * epochs
    warmup, last = steps(warmup_epochs, steps_per_epoch), total - 1
    if warmup >= total:
        raise ConfigError(
            f"{where}.warmup_epochs={warmup_epochs:g}: leaves no steps of the {epochs}-epoch run"
        )
    plan = Plan(total - warmup, steps_per_epoch, ref, total / steps_per_epoch - warmup_epochs)
    try:
        lr = schedule.curve(plan)
        extra = {k: (s, s.curve(plan)) for k, s in schedule.companions(optimizer).items()}
    except ConfigError as e:  # a schedule's own message, `key=value: why`
        raise ConfigError(f"{where}.{e}") from None
    peaks = [float(g["initial_lr"]) for g in optimizer.param_groups]
    tracks = [Track("lr", _planned(lr, warmup, last, start), True, peaks, schedule)]
    tracks += [
        Track(k, _planned(fn, warmup, last), False, [1.0], s) for k, (s, fn) in extra.items()
    ]
    for key, s in param_schedules(sched_cfg, where).items():
        if key in extra or (
            key == "beta1" and "momentum" in extra and "betas" in optimizer.defaults
        ):
            raise ConfigError(
                f"{where}.params.{key}: {where}._target_ ({type(schedule).__name__}) already "
                f"cycles the momentum; set {where}.cycle_momentum=false to schedule it in params"
            )
        tracks.append(_param_track(key, s, optimizer, steps_per_epoch, total, where))
    return Scheduler(optimizer, tracks, epoch_clock(epoch_steps, steps_per_epoch))


def _param_track(
    key: str, schedule: Schedule, optimizer: torch.optim.Optimizer, spe: int, total: int, where: str
) -> Track:
    at = f"{where}.params.{key}"
    configured = configured_value(optimizer, key, where)
    scaled = key in SCALED_KEYS
    if (scaled or not schedule.gives_values) and not configured > 0:
        hint = "" if scaled else " (or give the values themselves with phases)"
        raise ConfigError(
            f"{at}: the optimizer's {key} is {configured:g}, and this schedule multiplies it; "
            f"set the optimizer's {key} > 0{hint}"
        )
    try:
        fn = schedule.curve(Plan(total, spe, configured or 1.0, total / spe))
    except ConfigError as e:
        raise ConfigError(f"{at}.{e}") from None
    if key in BELOW_ONE and isinstance(schedule, Phases):
        high = max(p.high() for p in schedule.phases)
        if high >= 1:
            raise ConfigError(f"{at}.phases: {key} must stay below 1, a phase reaches {high:g}")
    if scaled:
        bases = [read_key(g, key) for g in optimizer.param_groups]
    else:
        bases = [1.0 if schedule.gives_values else configured]
    return Track(key, _planned(fn, 0, total - 1), scaled, bases, schedule)
