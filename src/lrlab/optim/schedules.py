"""What a schedule is, and every built-in one.

A schedule is a small object Hydra builds from `_target_` (conf/scheduler/<name>.yaml); its
constructor checks its values. `curve(plan)` gives its value at each optimizer step `t` in
`[0, plan.steps)`: for the lr (and weight_decay) a multiplier of each param group's own value, so
the ratios between groups hold; for another key (momentum, beta2, ...) a multiplier of the
optimizer's value, or the value itself when `gives_values` (phases, onecycle's and clr's momentum).
Warmup, holding past the plan, the epoch clock and resume are `lrlab.optim.scheduler.Scheduler`'s
job. Durations are in epochs (fractions allowed); absolute values (`eta_min`) in units of `plan.ref`.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate, pairwise
from typing import TYPE_CHECKING, Any

from lrlab.errors import ConfigError
from lrlab.utils import is_number

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Curve = Callable[[float], float]  # optimizer step -> value


@dataclass(frozen=True)
class Plan:
    """What a schedule is laid over."""

    steps: int  # optimizer steps the schedule runs (after any warmup)
    steps_per_epoch: int
    ref: float  # the optimizer's own value of the key: absolute values refer to it
    epochs: float  # the schedule's length in epochs (after any warmup)


class Schedule:
    """A function of training progress; subclasses check their values in `__init__`."""

    gives_values = False  # keys other than lr/weight_decay: True = the values themselves

    def curve(self, plan: Plan) -> Curve:
        raise NotImplementedError

    def companions(self, optimizer: torch.optim.Optimizer) -> dict[str, Schedule]:
        """Schedules of other param-group keys that come with this one (onecycle's momentum)."""
        return {}


class OnMetric(Schedule):
    """A metric-driven schedule: `observe(val_loss)` after each epoch; its `scale` multiplies the
    curve from the next step on. `state_dict` makes it resumable."""

    scale = 1.0

    def observe(self, metric: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        vars(self).update(state)


# --- checks: one-line errors `key=value: why`; the builder puts the config path in front


def number(key: str, value: Any, within: str = "", what: str = "") -> float:
    """`value` as a float if it is a finite number (not a bool) `within` e.g. "(0, 1]", ">= 0",
    "> 0" (`lrlab.utils.is_number`: the one number check)."""
    ok = is_number(value)
    if ok and within[:1] == ">":
        op, bound = within.split()
        ok = value > float(bound) if op == ">" else value >= float(bound)
    elif ok and within:
        low, high = (float(b) for b in within[1:-1].split(","))
        ok = (low < value if within[0] == "(" else low <= value) and (
            value < high if within[-1] == ")" else value <= high
        )
    if not ok:
        shown = f"in {within}" if within[:1] in "([" and within else within
        raise ConfigError(f"{key}={value!r}: must be {what or ('' if within else 'a number')}"
                          f"{' ' if what and within else ''}{shown}".rstrip())  # fmt: skip
    return float(value)


def integer(key: str, value: Any, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{key}={value!r}: must be an integer >= {low}")
    return value


def choice(key: str, value: Any, options: Sequence[Any]) -> Any:
    if value not in options:
        raise ConfigError(f"{key}={value!r}: must be {' | '.join(map(str, options))}")
    return value


def fraction(key: str, value: Any, ref: float) -> float:
    """An absolute value below the optimizer's (`eta_min`, `min_lr`) as a fraction of it."""
    if not (number(key, value) >= 0 and value < ref):
        raise ConfigError(f"{key}={value!r}: must be in [0, optimizer.lr={ref:g})")
    return float(value) / ref


def steps(epochs: float, spe: int) -> int:
    """Epochs (fractions allowed) as optimizer steps, rounding halves up."""
    return math.floor(epochs * spe + 0.5)


def duration(epochs: float, spe: int) -> int:
    """A positive duration in epochs as a whole number (at least 1) of optimizer steps."""
    return max(1, steps(epochs, spe))


# --- fastai's annealing formulas (SchedLin/SchedCos/SchedExp/SchedPoly): start -> end, pct 0 -> 1


def anneal_linear(start: float, end: float, pct: float) -> float:
    return start + (end - start) * pct


def anneal_cos(start: float, end: float, pct: float) -> float:
    return start + (1 + math.cos(math.pi * (1 - pct))) * (end - start) / 2


def anneal_exp(start: float, end: float, pct: float) -> float:
    return start * (end / start) ** pct


def anneal_poly(start: float, end: float, pct: float, power: float = 2.0) -> float:
    return start + (end - start) * pct**power


def anneal_const(start: float, end: float, pct: float) -> float:
    return start


ANNEALERS = {"cos": anneal_cos, "linear": anneal_linear, "exp": anneal_exp}  # onecycle's
SHAPES = {"linear": anneal_linear, "cos": anneal_cos, "exp": anneal_exp, "poly": anneal_poly,
          "const": anneal_const}  # fmt: skip


# --- where the optimizer steps sit on a run of phases: the two rules, one for every schedule


def fastai_rule(bounds: Sequence[float], pieces: Sequence[Curve]) -> Curve:
    """fastai's combine_scheds: phase k spans steps [bounds[k], bounds[k + 1]); `pieces[k]` is
    its value at position (t - its start) / its length."""
    last = len(pieces) - 1

    def at(t: float) -> float:
        k = min(max(bisect.bisect_right(bounds, t) - 1, 0), last)
        return pieces[k]((t - bounds[k]) / (bounds[k + 1] - bounds[k]))

    return at


def torch_rule(ends: Sequence[float], pieces: Sequence[Curve]) -> Curve:
    """torch's OneCycleLR: phase k ends on step `ends[k]` (at position 1), the first begins on
    step 0 and each other where the one before ended; later steps belong to the last phase."""
    begins = [0.0, *ends[:-1]]

    def at(t: float) -> float:
        k = next((i for i, end in enumerate(ends) if t <= end), len(ends) - 1)
        b, e = begins[k], ends[k]
        return pieces[k]((t - b) / (e - b) if e > b else 1.0)

    return at


# --- the built-ins


class Constant(Schedule):
    """Every param group stays at its own value."""

    def curve(self, plan: Plan) -> Curve:
        return lambda t: 1.0


class Step(Schedule):
    """torch's MultiStepLR: value = peak * gamma ** (milestones passed)."""

    def __init__(self, milestones: Sequence[float], gamma: float) -> None:
        ms = _plain(milestones)
        ms = list(ms) if isinstance(ms, tuple) else ms
        if (
            not isinstance(ms, list)
            or not all(is_number(m) and m > 0 for m in ms)
            or ms != sorted(ms)
        ):
            raise ConfigError(f"milestones={ms!r}: must be an increasing list of epochs > 0")
        self.milestones = ms
        self.gamma = number("gamma", gamma, "(0, 1]")

    def curve(self, plan: Plan) -> Curve:
        at = [steps(m, plan.steps_per_epoch) for m in self.milestones]  # decays *at* these steps
        if at[-1:] and at[-1] >= plan.steps:
            log.warning("scheduler.milestones=%s: some lie past the run's end", self.milestones)
        gamma = self.gamma
        return lambda t: gamma ** bisect.bisect_right(at, t)


class Cosine(Schedule):
    """torch's CosineAnnealingLR over the whole run (T_max = the run)."""

    def __init__(self, eta_min: float) -> None:
        self.eta_min = number("eta_min", eta_min, ">= 0")

    def curve(self, plan: Plan) -> Curve:
        eta, n = fraction("eta_min", self.eta_min, plan.ref), plan.steps
        return lambda t: anneal_cos(1.0, eta, t / n)


class FlatCos(Schedule):
    """fastai's fit_flat_cos: flat at the peak, then cosine annealing to peak / div_final."""

    def __init__(self, pct_start: float, div_final: float) -> None:
        self.pct_start = number("pct_start", pct_start, "(0, 1)")
        self.div_final = number("div_final", div_final, "> 0")

    def curve(self, plan: Plan) -> Curve:
        # combine_scheds([pct_start, 1 - pct_start], [no-op, cos]) in fractions of the run, as
        # fastai computes it (fastai_rule's arithmetic in steps differs in the last bits)
        p, final, n = self.pct_start, 1.0 / self.div_final, plan.steps
        return lambda t: 1.0 if t / n < p else anneal_cos(1.0, final, (t / n - p) / (1 - p))


class _Momentum(Schedule):
    """The momentum that a cyclic lr schedule moves the opposite way (its values)."""

    gives_values = True

    def __init__(self, curve: Callable[[Plan], Curve]) -> None:
        self._curve = curve

    def curve(self, plan: Plan) -> Curve:
        return self._curve(plan)


class _Cyclic(Schedule):
    """onecycle and clr: the lr and, inversely, the momentum (Adam: beta1)."""

    def _check_momentum(self, cycle: Any, base: Any, top: Any) -> None:
        self.cycle_momentum = choice("cycle_momentum", cycle, (None, True, False))
        self.base_momentum = number("base_momentum", base, "[0, 1)")
        self.max_momentum = number("max_momentum", top, "[0, 1)")

    def companions(self, optimizer: torch.optim.Optimizer) -> dict[str, Schedule]:
        # null (auto): cycle Adam-family beta1, or SGD/RMSprop momentum when it is nonzero
        d, cycle = optimizer.defaults, self.cycle_momentum
        if cycle and "betas" not in d and "momentum" not in d:
            name = type(optimizer).__name__
            raise ConfigError(f"cycle_momentum=True: {name} has no momentum or betas to cycle")
        if cycle is None:
            cycle = "betas" in d or float(d.get("momentum", 0.0)) > 0
        return {"momentum": _Momentum(self.momentum_curve)} if cycle else {}


class OneCycle(_Cyclic):
    """The 1cycle policy (Smith 2018), value for value torch's OneCycleLR."""

    def __init__(
        self,
        pct_start: float,
        div_factor: float,
        final_div_factor: float,
        anneal_strategy: str,
        three_phase: bool,
        cycle_momentum: bool | None,
        base_momentum: float,
        max_momentum: float,
    ) -> None:
        self.pct_start = number("pct_start", pct_start, "(0, 1)")
        self.div_factor = number("div_factor", div_factor, "> 0")
        self.final_div_factor = number("final_div_factor", final_div_factor, "> 0")
        self.anneal = ANNEALERS[choice("anneal_strategy", anneal_strategy, list(ANNEALERS))]
        self.three_phase = choice("three_phase", three_phase, (True, False))
        self._check_momentum(cycle_momentum, base_momentum, max_momentum)

    def _phases(self, plan: Plan, values: Sequence[float]) -> Curve:
        # OneCycleLR.get_lr: its phases end on these steps (not Phases': 2 * pct * n - 2)
        n, p = plan.steps, self.pct_start
        ends = [p * n - 1, 2 * p * n - 2, n - 1] if self.three_phase else [p * n - 1, n - 1]
        return torch_rule(ends, [partial(self.anneal, a, b) for a, b in pairwise(values)])

    def curve(self, plan: Plan) -> Curve:  # as a multiplier of the peak
        start = 1.0 / self.div_factor
        final = start / self.final_div_factor
        return self._phases(
            plan, (start, 1.0, start, final) if self.three_phase else (start, 1.0, final)
        )

    def momentum_curve(self, plan: Plan) -> Curve:
        lo, hi = self.base_momentum, self.max_momentum
        return self._phases(plan, (hi, lo, hi, hi) if self.three_phase else (hi, lo, hi))


CLR_BASE_DIV = 6.0  # base_lr: null is peak / 6 (the seed study's factor)


class CLR(_Cyclic):
    """Cyclical learning rates (Smith 2017), value for value torch's CyclicLR."""

    def __init__(
        self,
        base_lr: float | None,
        step_size: float,
        step_size_down: float | None,
        mode: str,
        gamma: float,
        cycle_momentum: bool | None,
        base_momentum: float,
        max_momentum: float,
    ) -> None:
        epochs = "a number of epochs"
        self.base_lr = (
            None
            if base_lr is None
            else number("base_lr", base_lr, ">= 0", "null (= optimizer.lr / 6) or")
        )
        self.step_size = number("step_size", step_size, "> 0", epochs)
        self.step_size_down = (
            None
            if step_size_down is None
            else number("step_size_down", step_size_down, "> 0", epochs)
        )
        self.mode = choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        self.gamma = number("gamma", gamma, "(0, 1]")
        self._check_momentum(cycle_momentum, base_momentum, max_momentum)

    def _height(self, plan: Plan) -> Curve:
        # torch.optim.lr_scheduler.CyclicLR.get_lr: 0 at base_lr, 1 at the peak, x amplitude
        spe = plan.steps_per_epoch
        up = duration(self.step_size, spe)
        down = up if self.step_size_down is None else duration(self.step_size_down, spe)
        size, ratio = up + down, up / (up + down)
        mode, gamma = self.mode, self.gamma

        def height(t: float) -> float:
            cycle = math.floor(1 + t / size)
            x = 1.0 + t / size - cycle
            rise = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
            if mode == "triangular2":
                return rise / 2.0 ** (cycle - 1)
            return rise * gamma**t if mode == "exp_range" else rise

        return height

    def curve(self, plan: Plan) -> Curve:
        low = (
            1 / CLR_BASE_DIV
            if self.base_lr is None
            else fraction("base_lr", self.base_lr, plan.ref)
        )
        height = self._height(plan)
        return lambda t: low + (1 - low) * height(t)

    def momentum_curve(self, plan: Plan) -> Curve:
        height, lo_m, hi_m = self._height(plan), self.base_momentum, self.max_momentum
        return lambda t: hi_m - (hi_m - lo_m) * height(t)


class SGDR(Schedule):
    """Cosine annealing with warm restarts: torch's CosineAnnealingWarmRestarts stepped with
    fractional epochs; the peak times cycle_decay at every restart (timm's cycle_decay)."""

    def __init__(self, t_0: float, t_mult: float, eta_min: float, cycle_decay: float) -> None:
        self.t_0 = number("t_0", t_0, "> 0", "a number of epochs")
        self.t_mult = number("t_mult", t_mult, ">= 1")
        self.eta_min = number("eta_min", eta_min, ">= 0")
        self.cycle_decay = number("cycle_decay", cycle_decay, "(0, 1]")

    def curve(self, plan: Plan) -> Curve:
        # restarts at the fractional epochs t_0 * (1 + t_mult + ... + t_mult**(k-1)), in steps
        first, t_mult = self.t_0 * plan.steps_per_epoch, self.t_mult
        eta, decay = fraction("eta_min", self.eta_min, plan.ref), self.cycle_decay

        def cycle_start(k: int) -> float:
            return first * k if t_mult == 1 else first * (t_mult**k - 1) / (t_mult - 1)

        def lr(t: float) -> float:
            if t_mult == 1:
                k = math.floor(t / first)
            else:  # torch's closed form, then nudged where floating point lands beside a boundary
                k = math.floor(math.log(t / first * (t_mult - 1) + 1, t_mult))
            while cycle_start(k + 1) <= t:
                k += 1
            while k > 0 and cycle_start(k) > t:
                k -= 1
            return anneal_cos(decay**k, eta, (t - cycle_start(k)) / (first * t_mult**k))

        return lr


class Plateau(OnMetric):
    """torch's ReduceLROnPlateau on the validation loss, checked after every epoch: its logic
    on the head group's lr, which every group follows in proportion."""

    def __init__(
        self,
        factor: float,
        patience: int,
        threshold: float,
        threshold_mode: str,
        cooldown: int,
        min_lr: float,
    ) -> None:
        self.factor = number("factor", factor, "(0, 1)")
        self.patience = integer("patience", patience)
        self.threshold = number("threshold", threshold, ">= 0")
        self.threshold_mode = choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = integer("cooldown", cooldown)
        self.min_lr = number("min_lr", min_lr, ">= 0")
        self.best, self.bad_epochs, self.cooldown_left = math.inf, 0, 0
        self.ref = self.lr = 1.0  # the head lr that torch's logic would set, and its start

    @property
    def scale(self) -> float:  # type: ignore[override]
        return self.lr / self.ref

    def curve(self, plan: Plan) -> Curve:
        fraction("min_lr", self.min_lr, plan.ref)
        self.ref = self.lr = plan.ref
        return lambda t: 1.0

    def observe(self, metric: float) -> None:  # ReduceLROnPlateau.step, mode="min"
        current = float(metric)
        if self.threshold_mode == "rel":
            better = current < self.best * (1.0 - self.threshold)
        else:
            better = current < self.best - self.threshold
        self.best, self.bad_epochs = (current, 0) if better else (self.best, self.bad_epochs + 1)
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            new = max(self.lr * self.factor, self.min_lr)
            if self.lr - new > 1e-8:  # torch's eps
                self.lr = new
            self.cooldown_left, self.bad_epochs = self.cooldown, 0


PHASE_KEYS = ("shape", "start", "end", "pct", "epochs", "power", "schedule")
TOLERANCE = 1e-9  # lengths "add up" within this fraction of the run


@dataclass
class Phase:
    """One phase: a length (`pct` of the run or `epochs`; neither: the rest) and what runs in
    it: fastai's Sched<Shape>(start, end), or any `schedule` laid over the phase."""

    shape: str = "linear"  # linear | cos | exp | poly | const
    start: float = 1.0  # value at the phase's start (lr: a multiplier of the peak)
    end: float = 1.0  # value at its end (const: ignored)
    pct: float | None = None  # length as a fraction of the run (after any warmup) ...
    epochs: float | None = None  # ... or in epochs; neither: the rest of the run (one phase)
    power: float = 2.0  # poly: start + (end - start) * pos ** power
    schedule: Schedule | None = None  # instead of shape/start/end: this schedule over the phase

    def high(self) -> float:
        return self.start if self.shape == "const" else max(self.start, self.end)


def _phase(key: str, phase: Any) -> Phase:
    if not isinstance(phase, Mapping):
        raise ConfigError(f"{key}={phase!r}: a phase is a mapping (shape, start, end, pct|epochs)")
    unknown = sorted(set(phase) - set(PHASE_KEYS))
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]} is not a key of a phase (it takes {PHASE_KEYS})")
    p = Phase(**phase)
    choice(f"{key}.shape", p.shape, list(SHAPES))
    for k in ("start", "end"):
        number(f"{key}.{k}", getattr(p, k), ">= 0", "a number")
    if p.shape == "exp" and not (p.start > 0 and p.end > 0):
        raise ConfigError(f"{key}: shape exp needs start and end > 0, got {p.start}, {p.end}")
    number(f"{key}.power", p.power, "> 0")
    if p.pct is not None and p.epochs is not None:
        raise ConfigError(f"{key}: give its length as pct or epochs, not both")
    if p.pct is not None:
        number(f"{key}.pct", p.pct, "(0, 1]")
    if p.epochs is not None:
        number(f"{key}.epochs", p.epochs, "> 0", "a number of epochs")
    if p.schedule is not None and not isinstance(p.schedule, Schedule):
        raise ConfigError(f"{key}.schedule: must be a schedule (_target_: ...)")
    return p


class Phases(Schedule):
    """Phases one after the other (fastai's combine_scheds): a schedule made of schedules.
    `convention`, where the optimizer steps sit on them: `fastai_rule` (step t is at t / n of
    the run, as in cosine, flat_cos and the warmup) or `torch_rule` (phase k ends on step (its
    cumulative length) - 1). For keys other than lr/weight_decay, start/end are the values."""

    gives_values = True

    def __init__(self, phases: Sequence[Any], convention: str) -> None:
        if isinstance(phases, str | bytes) or not isinstance(phases, Sequence) or not phases:
            raise ConfigError(f"phases={_plain(phases)!r}: must be a non-empty list of phases")
        self.phases = [_phase(f"phases[{i}]", p) for i, p in enumerate(_plain(phases))]
        self.convention = choice("convention", convention, ("fastai", "torch"))
        open_ended = [i for i, p in enumerate(self.phases) if p.pct is None and p.epochs is None]
        if len(open_ended) > 1:
            raise ConfigError(
                f"phases: phases {open_ended} have no length; only one phase may take the rest"
            )
        if all(p.epochs is None for p in self.phases):  # fractions only: checkable now
            self.fractions(1.0)

    def fractions(self, run_epochs: float) -> list[float]:
        """Each phase's length as a fraction of the run (`run_epochs` long, after any warmup)."""
        fracs = [p.pct if p.pct is not None else None if p.epochs is None else p.epochs / run_epochs
                 for p in self.phases]  # fmt: skip
        total = sum(f for f in fracs if f is not None)
        in_epochs = any(p.epochs is not None for p in self.phases)
        shown = (
            f"{total * run_epochs:g} of the run's {run_epochs:g} epochs"
            if in_epochs
            else f"{total:g}"
        )
        if None in fracs:
            if total >= 1 - TOLERANCE:
                raise ConfigError(
                    f"phases: the lengths add up to {shown}, leaving nothing for the rest"
                )
            fracs[fracs.index(None)] = 1 - total
        elif abs(total - 1) > TOLERANCE:
            whole = f"the run's {run_epochs:g} epochs" if in_epochs else "1 (the whole run)"
            raise ConfigError(f"phases: the lengths add up to {shown}, not {whole}")
        return fracs  # type: ignore[return-value]

    def curve(self, plan: Plan) -> Curve:
        n, cum = plan.steps, list(accumulate(self.fractions(plan.epochs), initial=0.0))
        bounds = [_snap(n * c) for c in cum[:-1]] + [float(n)]
        pieces = [
            self._piece(p, bounds[k + 1] - bounds[k], plan) for k, p in enumerate(self.phases)
        ]
        if self.convention == "fastai":
            return fastai_rule(bounds, pieces)
        return torch_rule([b - 1 for b in bounds[1:]], pieces)

    @staticmethod
    def _piece(p: Phase, length: float, plan: Plan) -> Curve:
        """The phase as a function of its position in [0, 1]."""
        if p.schedule is not None:
            sub = p.schedule.curve(Plan(max(1, round(length)), plan.steps_per_epoch, plan.ref,
                                        length / plan.steps_per_epoch))  # fmt: skip
            return lambda pos: sub(pos * length)
        if p.shape == "poly":
            return partial(anneal_poly, p.start, p.end, power=p.power)
        return partial(SHAPES[p.shape], p.start, p.end)


def _snap(x: float) -> float:
    """A boundary within rounding error of a whole step is that step (so a jump between phases,
    e.g. fine_tune's unfreeze, falls on the step it is meant for)."""
    r = round(x)
    return float(r) if abs(x - r) < 1e-9 * max(1.0, abs(x)) else x


def _plain(value: Any) -> Any:
    """A ListConfig/DictConfig (Hydra's arguments) as plain lists and dicts."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
