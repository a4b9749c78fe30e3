"""Learning-rate (and momentum) schedules, stepped once per optimizer step.

Every schedule is a pure function of the optimizer step `t` returning a multiplier of each
param group's peak lr (so the ratios between groups hold at every step), plus, for the cyclic
ones, a function returning the momentum. One small `torch.optim.lr_scheduler.LRScheduler`
subclass, `Schedule`, applies them; `build_scheduler` turns a `scheduler:` config into one.

Conventions (all schedules):
- peak lr of a group = its `initial_lr` if set, else its `lr` at construction;
- durations are in epochs (fractions allowed), converted with `steps_per_epoch`;
- absolute lrs in the config (`base_lr`, `eta_min`, `min_lr`) refer to the optimizer's own lr
  (`optimizer.lr`); every group gets the same fraction of its own peak;
- past the planned number of steps a schedule holds its final value (never raises).
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from lrlab.errors import ConfigError

log = logging.getLogger(__name__)

LrFn = Callable[[int], float]  # optimizer step -> multiplier of the peak lr
MomFn = Callable[[int], float]  # optimizer step -> momentum (SGD momentum or Adam beta1)

CLR_BASE_DIV = 6.0  # default CLR base_lr = peak / 6 (the seed study's factor)


# --- annealing formulas (fastai's SchedLin/SchedCos/SchedExp/SchedPoly): start -> end as pct 0 -> 1


def anneal_linear(start: float, end: float, pct: float) -> float:
    return start + (end - start) * pct


def anneal_cos(start: float, end: float, pct: float) -> float:
    return start + (1 + math.cos(math.pi * (1 - pct))) * (end - start) / 2


def anneal_exp(start: float, end: float, pct: float) -> float:
    return start * (end / start) ** pct


def anneal_poly(start: float, end: float, pct: float, power: float = 2.0) -> float:
    return start + (end - start) * pct**power


ANNEALERS: dict[str, Callable[[float, float, float], float]] = {
    "cos": anneal_cos,
    "linear": anneal_linear,
    "exp": anneal_exp,
}


# --- the scheduler class


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
    ) -> None:
        self.lr_fn, self.mom_fn = lr_fn, mom_fn
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

    def get_lr(self) -> list[float]:
        mult = self.lr_fn(self.last_epoch) * self._plateau_factor()
        return [base * mult for base in self.base_lrs]

    def _apply_momentum(self) -> None:
        if self.mom_fn is None:
            return
        m = self.mom_fn(self.last_epoch)
        for group in self.optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (m, *group["betas"][1:])
            else:
                group["momentum"] = m

    def _apply(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = [float(g["lr"]) for g in self.optimizer.param_groups]
        self._apply_momentum()

    def step(self) -> None:  # type: ignore[override]
        super().step()
        self._apply_momentum()

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
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.last_epoch = state_dict["last_epoch"]
        self._step_count = state_dict["_step_count"]
        self.base_lrs = list(state_dict["base_lrs"])
        if self._plateau is not None:
            self._plateau.load_state_dict(dict(state_dict["plateau"]))
            self._plateau.optimizer.param_groups[0]["lr"] = state_dict["plateau_lr"]
        self._apply()  # the groups' lr/momentum at the saved step, whatever was loaded before


# --- the schedules: (params, total steps, steps per epoch, optimizer.lr) -> (lr_fn, mom_fn)

Params = dict[str, Any]
Factory = Callable[[Params, int, int, float], tuple[LrFn, MomFn | None]]


def _constant(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    return (lambda t: 1.0), None


def _step(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    milestones = [_steps(m, spe) for m in p["milestones"]]  # MultiStepLR decays *at* these steps
    if milestones[-1:] and milestones[-1] >= n:
        log.warning("scheduler.milestones=%s: some lie past the run's end", p["milestones"])
    gamma = p["gamma"]
    return (lambda t: gamma ** bisect.bisect_right(milestones, t)), None


def _cosine(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    eta = p["eta_min"] / ref
    return (lambda t: anneal_cos(1.0, eta, t / n)), None  # CosineAnnealingLR with T_max = n


def _plateau(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    return (lambda t: 1.0), None  # the reductions are applied by Schedule.epoch_end


def _clr(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    # torch.optim.lr_scheduler.CyclicLR.get_lr, as a multiplier of the peak.
    up = _duration(p, "step_size", spe)
    down = up if p["step_size_down"] is None else _duration(p, "step_size_down", spe)
    size, ratio = up + down, up / (up + down)
    low = 1 / CLR_BASE_DIV if p["base_lr"] is None else p["base_lr"] / ref
    mode, gamma = p["mode"], p["gamma"]

    def height(t: int) -> float:  # 0 at base_lr, 1 at the peak, times the mode's amplitude
        cycle = math.floor(1 + t / size)
        x = 1.0 + t / size - cycle
        rise = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        if mode == "triangular2":
            return rise / 2.0 ** (cycle - 1)
        if mode == "exp_range":
            return rise * gamma**t
        return rise

    lo_m, hi_m = p["base_momentum"], p["max_momentum"]
    return (lambda t: low + (1 - low) * height(t)), (lambda t: hi_m - (hi_m - lo_m) * height(t))


def _onecycle(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    # torch.optim.lr_scheduler.OneCycleLR.get_lr, as a multiplier of the peak.
    anneal = ANNEALERS[p["anneal_strategy"]]
    start = 1.0 / p["div_factor"]
    final = start / p["final_div_factor"]
    lo_m, hi_m = p["base_momentum"], p["max_momentum"]
    up_end = p["pct_start"] * n - 1
    # (end step, lr from, lr to, momentum from, momentum to)
    if p["three_phase"]:
        phases = [
            (up_end, start, 1.0, hi_m, lo_m),
            (2 * p["pct_start"] * n - 2, 1.0, start, lo_m, hi_m),
            (n - 1, start, final, hi_m, hi_m),
        ]
    else:
        phases = [(up_end, start, 1.0, hi_m, lo_m), (n - 1, 1.0, final, lo_m, hi_m)]

    def at(t: int, lr: bool) -> float:
        t = min(t, n - 1)  # hold the final value past the end (OneCycleLR raises)
        begin = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                pct = (t - begin) / (end - begin) if end > begin else 1.0
                return anneal(lr0, lr1, pct) if lr else anneal(m0, m1, pct)
            begin = end
        raise AssertionError("unreachable")

    return (lambda t: at(t, True)), (lambda t: at(t, False))


def _sgdr(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    # CosineAnnealingWarmRestarts(T_0, T_mult, eta_min) stepped with fractional epochs, counted
    # in whole steps so restarts land exactly on a step; the peak is multiplied by cycle_decay
    # at each restart (timm's cycle_decay).
    first, t_mult = _duration(p, "t_0", spe), p["t_mult"]
    eta, decay = p["eta_min"] / ref, p["cycle_decay"]

    def length(cycle: int) -> int:
        return max(1, round(first * t_mult**cycle))

    def lr(t: int) -> float:
        start, cycle = 0, 0
        while t >= start + length(cycle):
            start, cycle = start + length(cycle), cycle + 1
        return anneal_cos(decay**cycle, eta, (t - start) / length(cycle))

    return lr, None


def _flat_cos(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    # fastai's fit_flat_cos: combine_scheds([pct_start, 1 - pct_start], [no-op, cos]).
    pct_start, final = p["pct_start"], 1.0 / p["div_final"]

    def lr(t: int) -> float:
        pct = t / n
        if pct < pct_start:
            return 1.0
        return anneal_cos(1.0, final, (pct - pct_start) / (1 - pct_start))

    return lr, None


# name -> (factory, default params). The YAML files in conf/scheduler/ mirror these defaults.
SCHEDULES: dict[str, tuple[Factory, Params]] = {
    "constant": (_constant, {}),
    "step": (_step, {"milestones": [3, 4], "gamma": 0.1}),
    "cosine": (_cosine, {"eta_min": 0.0}),
    "plateau": (
        _plateau,
        {
            "factor": 0.1,
            "patience": 2,
            "threshold": 1e-4,
            "threshold_mode": "rel",
            "cooldown": 0,
            "min_lr": 0.0,
        },
    ),
    "clr": (
        _clr,
        {
            "base_lr": None,
            "step_size": 2.0,
            "step_size_down": None,
            "mode": "triangular",
            "gamma": 1.0,
            "cycle_momentum": False,  # CyclicLR's momentum range, off unless asked for
            "base_momentum": 0.8,
            "max_momentum": 0.9,
        },
    ),
    "onecycle": (
        _onecycle,
        {
            "pct_start": 0.3,
            "div_factor": 25.0,
            "final_div_factor": 1e4,
            "anneal_strategy": "cos",
            "three_phase": False,
            "cycle_momentum": None,  # OneCycleLR's momentum range, on where there is one
            "base_momentum": 0.85,
            "max_momentum": 0.95,
        },
    ),
    "sgdr": (_sgdr, {"t_0": 1.0, "t_mult": 2.0, "eta_min": 0.0, "cycle_decay": 1.0}),
    "flat_cos": (_flat_cos, {"pct_start": 0.75, "div_final": 1e5}),
}
COMMON = {"warmup_epochs": 0.0, "warmup_start_factor": 0.0}


# --- building from a config


def reference_lr(optimizer: torch.optim.Optimizer) -> float:
    """The optimizer's own lr (`optimizer.lr` in the config), which absolute config lrs refer to."""
    lr = optimizer.defaults.get("lr")
    if lr is None:
        group = optimizer.param_groups[0]
        lr = group.get("initial_lr", group["lr"])
    return float(lr)


def _bad(key: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"scheduler.{key}={value!r}: {why}")


def _steps(epochs: float, spe: int) -> int:
    """Epochs (fractions allowed) as optimizer steps, rounding halves up."""
    return math.floor(epochs * spe + 0.5)


def _duration(p: Params, key: str, spe: int) -> int:
    """A positive duration in epochs as a whole number (at least 1) of optimizer steps."""
    return max(1, _steps(p[key], spe))


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_epochs(v: Any) -> bool:
    return _num(v) and v > 0


# key -> (is the value ok, given optimizer.lr; what it must be). Checked before any training work.
_RULES: dict[str, tuple[Callable[[Any, float], bool], str]] = {
    "warmup_epochs": (lambda v, ref: _num(v) and v >= 0, "must be a number of epochs >= 0"),
    "warmup_start_factor": (lambda v, ref: _num(v) and 0 <= v <= 1, "must be in [0, 1]"),
    "eta_min": (lambda v, ref: _num(v) and 0 <= v < ref, "must be in [0, optimizer.lr={ref:g})"),
    "min_lr": (lambda v, ref: _num(v) and 0 <= v < ref, "must be in [0, optimizer.lr={ref:g})"),
    "base_lr": (
        lambda v, ref: v is None or (_num(v) and 0 <= v < ref),
        "must be null (= optimizer.lr / 6) or in [0, optimizer.lr={ref:g})",
    ),
    "milestones": (
        lambda v, ref: (
            isinstance(v, (list, tuple)) and all(map(_is_epochs, v)) and list(v) == sorted(v)
        ),
        "must be an increasing list of epochs > 0",
    ),
    "step_size": (lambda v, ref: _is_epochs(v), "must be a number of epochs > 0"),
    "step_size_down": (
        lambda v, ref: v is None or _is_epochs(v),
        "must be null (= step_size) or a number of epochs > 0",
    ),
    "t_0": (lambda v, ref: _is_epochs(v), "must be a number of epochs > 0"),
    "t_mult": (lambda v, ref: _num(v) and v >= 1, "must be >= 1"),
    "gamma": (lambda v, ref: _num(v) and 0 < v <= 1, "must be in (0, 1]"),
    "cycle_decay": (lambda v, ref: _num(v) and 0 < v <= 1, "must be in (0, 1]"),
    "factor": (lambda v, ref: _num(v) and 0 < v < 1, "must be in (0, 1)"),
    "pct_start": (lambda v, ref: _num(v) and 0 < v < 1, "must be in (0, 1)"),
    "div_factor": (lambda v, ref: _num(v) and v > 0, "must be > 0"),
    "final_div_factor": (lambda v, ref: _num(v) and v > 0, "must be > 0"),
    "div_final": (lambda v, ref: _num(v) and v > 0, "must be > 0"),
    "threshold": (lambda v, ref: _num(v) and v >= 0, "must be >= 0"),
    "patience": (lambda v, ref: _num(v) and int(v) == v >= 0, "must be an integer >= 0"),
    "cooldown": (lambda v, ref: _num(v) and int(v) == v >= 0, "must be an integer >= 0"),
    "threshold_mode": (lambda v, ref: v in ("rel", "abs"), "must be rel | abs"),
    "mode": (
        lambda v, ref: v in ("triangular", "triangular2", "exp_range"),
        "must be triangular | triangular2 | exp_range",
    ),
    "anneal_strategy": (lambda v, ref: v in ANNEALERS, "must be cos | linear | exp"),
    "three_phase": (lambda v, ref: isinstance(v, bool), "must be true | false"),
    "cycle_momentum": (lambda v, ref: v in (None, True, False), "must be null | true | false"),
    "base_momentum": (lambda v, ref: _num(v) and 0 <= v < 1, "must be in [0, 1)"),
    "max_momentum": (lambda v, ref: _num(v) and 0 <= v < 1, "must be in [0, 1)"),
}


def _cycles_momentum(setting: bool | None, optimizer: torch.optim.Optimizer) -> bool:
    """null (auto): cycle Adam-family beta1, or SGD/RMSprop momentum when it is nonzero."""
    d = optimizer.defaults
    if setting is None:
        return "betas" in d or float(d.get("momentum", 0.0)) > 0
    if setting and "betas" not in d and "momentum" not in d:
        raise _bad(
            "cycle_momentum", True, f"{type(optimizer).__name__} has no momentum or betas to cycle"
        )
    return bool(setting)


def _with_warmup(
    lr_fn: LrFn, mom_fn: MomFn | None, steps: int, start: float
) -> tuple[LrFn, MomFn | None]:
    """Linear warmup from `start` x the schedule's first value to it, then the schedule."""
    first = lr_fn(0)

    def lr(t: int) -> float:
        return first * (start + (1 - start) * t / steps) if t < steps else lr_fn(t - steps)

    if mom_fn is None:
        return lr, None
    return lr, (lambda t: mom_fn(max(0, t - steps)))


def scheduler_params(
    sched_cfg: Mapping[str, Any], optimizer_lr: float | None = None
) -> tuple[str, Params]:
    """The schedule's name and its parameters with the defaults filled in, checked: a bad name,
    key or value is a one-line `ConfigError` naming it. `optimizer_lr` bounds the absolute lrs
    (`eta_min`, ...); leave it None where it is not known yet (`optimizer.lr=auto`)."""
    from omegaconf import DictConfig, OmegaConf

    cfg = (
        OmegaConf.to_container(sched_cfg, resolve=True)
        if isinstance(sched_cfg, DictConfig)
        else dict(sched_cfg)
    )
    name = cfg.pop("name", None)
    if name not in SCHEDULES:
        raise ConfigError(f"scheduler.name={name!r} is unknown; choose one of {sorted(SCHEDULES)}")
    params = {**COMMON, **SCHEDULES[name][1]}
    unknown = sorted(set(cfg) - set(params))
    if unknown:
        raise ConfigError(
            f"scheduler.{unknown[0]} is not a parameter of scheduler {name!r} "
            f"(it takes {sorted(params)})"
        )
    params.update(cfg)
    ref = math.inf if optimizer_lr is None else optimizer_lr
    for key, value in params.items():
        ok, why = _RULES[key]
        if not ok(value, ref):
            raise _bad(key, value, why.format(ref=ref))
    return name, params


def build_scheduler(
    sched_cfg: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    epochs: int,
) -> Schedule:
    """The `scheduler:` config as a `Schedule` over `epochs * steps_per_epoch` optimizer steps.

    Build it after the optimizer's lrs are final (e.g. after the LR finder): it reads each
    group's peak here."""
    if steps_per_epoch < 1 or epochs < 1:
        raise ValueError(f"need steps_per_epoch, epochs >= 1, got {steps_per_epoch}, {epochs}")
    ref = reference_lr(optimizer)
    if not ref > 0:
        raise ConfigError(f"optimizer.lr={ref!r}: the schedule's peak must be > 0")
    name, params = scheduler_params(sched_cfg, ref)
    factory = SCHEDULES[name][0]

    total = steps_per_epoch * epochs
    warmup = _steps(params["warmup_epochs"], steps_per_epoch)
    if warmup >= total:
        raise _bad(
            "warmup_epochs", params["warmup_epochs"], f"leaves no steps of the {epochs}-epoch run"
        )
    n = total - warmup  # the schedule proper runs after the warmup
    lr_fn, mom_fn = factory(params, n, steps_per_epoch, ref)
    if "cycle_momentum" in params and not _cycles_momentum(params["cycle_momentum"], optimizer):
        mom_fn = None
    if warmup:
        lr_fn, mom_fn = _with_warmup(lr_fn, mom_fn, warmup, params["warmup_start_factor"])

    def held(t: int) -> float:  # past the planned end: the final value
        return lr_fn(min(t, total))

    plateau = None
    if name == "plateau":
        plateau = {k: params[k] for k in SCHEDULES["plateau"][1]}
    return Schedule(
        optimizer,
        held,
        None if mom_fn is None else (lambda t: mom_fn(min(t, total))),
        plateau=plateau,
    )
