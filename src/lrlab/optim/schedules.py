"""Every built-in schedule as a pure function of the optimizer step, with its config schema.

A schedule factory takes the checked parameters, the number of steps it runs (`n`), the steps
per epoch and the optimizer's own lr, and returns `lr_fn(t)` (a multiplier of each param
group's peak lr) and, for the cyclic ones, `mom_fn(t)` (the momentum / Adam beta1). The
dataclasses are the `scheduler:` configs' schemas and the single source of their defaults.
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass, field

from lrlab.optim.annealers import ANNEALERS, anneal_cos
from lrlab.optim.phases import Phases, phases_schedule
from lrlab.optim.schedule_base import (
    Factory,
    LrFn,
    MomFn,
    Params,
    ScheduleConfig,
    duration,
    steps,
)

log = logging.getLogger(__name__)

CLR_BASE_DIV = 6.0  # default CLR base_lr = peak / 6 (the seed study's factor)


# --- schemas (`conf/scheduler/<name>.yaml`): durations in epochs, fractions allowed


@dataclass
class Constant(ScheduleConfig):
    """Every param group stays at its own peak."""

    name: str = "constant"


@dataclass
class Step(ScheduleConfig):
    """MultiStepLR: lr = peak * gamma ** (milestones passed)."""

    name: str = "step"
    milestones: list[float] = field(default_factory=lambda: [3.0, 4.0])  # epochs
    gamma: float = 0.1


@dataclass
class Cosine(ScheduleConfig):
    """CosineAnnealingLR over the whole run."""

    name: str = "cosine"
    eta_min: float = 0.0  # final lr of the head group (optimizer.lr); others: the same fraction


@dataclass
class Plateau(ScheduleConfig):
    """ReduceLROnPlateau on the validation loss, checked after every epoch."""

    name: str = "plateau"
    factor: float = 0.1  # lr multiplier at each reduction
    patience: int = 2  # epochs without improvement before a reduction
    threshold: float = 1e-4  # the least improvement that counts
    threshold_mode: str = "rel"  # rel: better than best * (1 - threshold) | abs: best - threshold
    cooldown: int = 0  # epochs after a reduction before bad epochs count again
    min_lr: float = 0.0  # lower bound of the head group's lr; others keep their ratio


@dataclass
class CLR(ScheduleConfig):
    """Cyclical learning rates (Smith 2017), value for value torch's CyclicLR."""

    name: str = "clr"
    base_lr: float | None = None  # null: peak / 6 (follows the peak, e.g. the LR finder's)
    step_size: float = 2.0  # epochs from base_lr up to the peak
    step_size_down: float | None = None  # epochs from the peak back down; null: = step_size
    mode: str = "triangular"  # triangular | triangular2 | exp_range
    gamma: float = 1.0  # exp_range: amplitude multiplied by gamma every optimizer step
    cycle_momentum: bool | None = False  # true: momentum/beta1 cycles inversely to the lr
    base_momentum: float = 0.8  # momentum at the peak lr
    max_momentum: float = 0.9  # momentum at base_lr


@dataclass
class OneCycle(ScheduleConfig):
    """The 1cycle policy (Smith 2018), value for value torch's OneCycleLR."""

    name: str = "onecycle"
    pct_start: float = 0.3  # fraction of the run spent rising to the peak
    div_factor: float = 25.0  # start lr = peak / div_factor
    final_div_factor: float = 1e4  # final lr = start lr / final_div_factor
    anneal_strategy: str = "cos"  # cos | linear (torch's) | exp (fastai's SchedExp)
    three_phase: bool = False  # rise, fall back to the start lr, then anneal to the final lr
    cycle_momentum: bool | None = None  # null: Adam beta1, or SGD/RMSprop momentum if nonzero
    base_momentum: float = 0.85  # momentum at the peak lr
    max_momentum: float = 0.95  # momentum at the start and end


@dataclass
class SGDR(ScheduleConfig):
    """Cosine annealing with warm restarts: torch's CosineAnnealingWarmRestarts stepped with
    fractional epochs; defaults as fastai's fit_sgdr (restarts at epochs 1, 3, 7, 15, ...)."""

    name: str = "sgdr"
    t_0: float = 1.0  # length of the first cycle in epochs
    t_mult: float = 2.0  # each cycle is t_mult times longer than the previous one
    eta_min: float = 0.0  # lr at the end of every cycle (head group)
    cycle_decay: float = 1.0  # the peak is multiplied by this at every restart


@dataclass
class FlatCos(ScheduleConfig):
    """fastai's fit_flat_cos: flat at the peak, then cosine annealing to peak / div_final."""

    name: str = "flat_cos"
    pct_start: float = 0.75  # fraction of the run at the peak
    div_final: float = 1e5


# --- the schedules: (params, steps, steps per epoch, optimizer.lr) -> (lr_fn, mom_fn)


def _constant(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    return (lambda t: 1.0), None


def _step(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    milestones = [steps(m, spe) for m in p["milestones"]]  # MultiStepLR decays *at* these steps
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
    up = duration(p["step_size"], spe)
    down = up if p["step_size_down"] is None else duration(p["step_size_down"], spe)
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
    # CosineAnnealingWarmRestarts(T_0, T_mult, eta_min).step(t / spe): restarts at the exact
    # fractional epochs t_0 * (1 + t_mult + ... + t_mult**(k-1)), counted here in (fractional)
    # steps; the peak is multiplied by cycle_decay at each restart (timm's cycle_decay).
    first, t_mult = p["t_0"] * spe, p["t_mult"]  # the first cycle's length in steps
    eta, decay = p["eta_min"] / ref, p["cycle_decay"]

    def cycle_start(k: int) -> float:
        return first * k if t_mult == 1 else first * (t_mult**k - 1) / (t_mult - 1)

    def lr(t: int) -> float:
        if t_mult == 1:
            k = math.floor(t / first)
        else:  # torch's closed form, then nudged where floating point lands beside a boundary
            k = math.floor(math.log(t / first * (t_mult - 1) + 1, t_mult))
        while cycle_start(k + 1) <= t:
            k += 1
        while k > 0 and cycle_start(k) > t:
            k -= 1
        return anneal_cos(decay**k, eta, (t - cycle_start(k)) / (first * t_mult**k))

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


# name -> (factory, schema)
SCHEDULES: dict[str, tuple[Factory, type[ScheduleConfig]]] = {
    "constant": (_constant, Constant),
    "step": (_step, Step),
    "cosine": (_cosine, Cosine),
    "plateau": (_plateau, Plateau),
    "clr": (_clr, CLR),
    "onecycle": (_onecycle, OneCycle),
    "sgdr": (_sgdr, SGDR),
    "flat_cos": (_flat_cos, FlatCos),
    "phases": (phases_schedule, Phases),
}

__all__ = ["SCHEDULES", "Factory", "LrFn", "MomFn", "Params", "ScheduleConfig", "steps"]
