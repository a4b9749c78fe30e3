"""`scheduler=phases`: a schedule composed of phases, as fastai's `combine_scheds`.

Each phase has a length (`pct` of the run after any warmup, or `epochs`; one phase may leave
both out and take what the others leave), a shape (fastai's `SchedLin`, `SchedCos`, `SchedExp`,
`SchedPoly`, `SchedNo`) and `start`/`end` values: multipliers of each param group's peak lr (for
another hyper-parameter, see `param_schedules`).

Where the optimizer steps sit on the phases (`convention`):
- `fastai` (combine_scheds): step t is at t / n of the n-step run; a phase that starts at c
  steps and lasts L has position (t - c) / L, so each step takes the value where it starts and
  the last step stops one step short of the last `end`. cosine, flat_cos and the warmup do this.
- `torch` (OneCycleLR): phase k ends on step (its cumulative length) - 1, where it takes its
  `end`; the first phase starts on step 0. The run's last step takes the last `end`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lrlab.errors import ConfigError
from lrlab.optim.annealers import anneal_cos, anneal_exp, anneal_linear, anneal_poly
from lrlab.optim.schedule_base import LrFn, MomFn, Params, ScheduleConfig, steps

CONVENTIONS = ("fastai", "torch")
TOLERANCE = 1e-9  # lengths "add up" within this fraction of the run


@dataclass
class Phase:
    """One phase: fastai's Sched<Shape>(start, end) over `pct` of the run or `epochs`."""

    shape: str = "linear"  # linear | cos | exp | poly | const
    start: float = 1.0  # value at the phase's start (lr: a multiplier of the peak)
    end: float = 1.0  # value at its end (const: ignored)
    pct: float | None = None  # length as a fraction of the run (after any warmup) ...
    epochs: float | None = None  # ... or in epochs; neither: the rest of the run (one phase)
    power: float = 2.0  # poly: start + (end - start) * pos ** power


@dataclass
class Phases(ScheduleConfig):
    """Phases one after the other; the default is fastai's fit_one_cycle lr (pct_start 0.25,
    div 25, div_final 1e5)."""

    name: str = "phases"
    phases: list[Phase] = field(
        default_factory=lambda: [
            Phase(shape="cos", start=0.04, end=1.0, pct=0.25),
            Phase(shape="cos", start=1.0, end=1e-5),
        ]
    )
    convention: str = "fastai"  # fastai (combine_scheds) | torch (OneCycleLR): see the module


SHAPES: dict[str, Callable[[float, float, float, float], float]] = {
    "linear": lambda s, e, pos, power: anneal_linear(s, e, pos),
    "cos": lambda s, e, pos, power: anneal_cos(s, e, pos),
    "exp": lambda s, e, pos, power: anneal_exp(s, e, pos),
    "poly": anneal_poly,
    "const": lambda s, e, pos, power: s,
}
PHASE_KEYS = tuple(asdict(Phase()))


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_phases(phases: Any, where: str) -> list[dict[str, Any]]:
    """The phases with their defaults filled in; a bad one is a one-line ConfigError naming it
    (`where` is the key, e.g. `scheduler.phases`). Whether epoch lengths fit the run is checked
    when the schedule is built (`phases_schedule`), where the run's length is known."""
    if not isinstance(phases, Sequence) or isinstance(phases, str) or not phases:
        raise ConfigError(f"{where}={phases!r}: must be a non-empty list of phases")
    out = []
    for i, phase in enumerate(phases):
        key = f"{where}[{i}]"
        if not isinstance(phase, Mapping):
            raise ConfigError(
                f"{key}={phase!r}: a phase is a mapping (shape, start, end, pct|epochs)"
            )
        unknown = sorted(set(phase) - set(PHASE_KEYS))
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]} is not a key of a phase (it takes {PHASE_KEYS})")
        p = {**asdict(Phase()), **phase}
        if p["shape"] not in SHAPES:
            raise ConfigError(f"{key}.shape={p['shape']!r}: must be {' | '.join(SHAPES)}")
        for k in ("start", "end"):
            if not _num(p[k]) or p[k] < 0:
                raise ConfigError(f"{key}.{k}={p[k]!r}: must be a number >= 0")
        if p["shape"] == "exp" and not (p["start"] > 0 and p["end"] > 0):
            raise ConfigError(
                f"{key}: shape exp needs start and end > 0, got {p['start']}, {p['end']}"
            )
        if not _num(p["power"]) or p["power"] <= 0:
            raise ConfigError(f"{key}.power={p['power']!r}: must be > 0")
        if p["pct"] is not None and p["epochs"] is not None:
            raise ConfigError(f"{key}: give its length as pct or epochs, not both")
        if p["pct"] is not None and not (_num(p["pct"]) and 0 < p["pct"] <= 1):
            raise ConfigError(f"{key}.pct={p['pct']!r}: must be in (0, 1]")
        if p["epochs"] is not None and not (_num(p["epochs"]) and p["epochs"] > 0):
            raise ConfigError(f"{key}.epochs={p['epochs']!r}: must be a number of epochs > 0")
        out.append(p)
    open_ended = [i for i, p in enumerate(out) if p["pct"] is None and p["epochs"] is None]
    if len(open_ended) > 1:
        raise ConfigError(
            f"{where}: phases {open_ended} have no length; only one phase may take the rest"
        )
    if all(p["epochs"] is None for p in out):  # fractions only: checkable without the run length
        _fractions(out, 1.0, where)
    return out


def _fractions(phases: list[dict[str, Any]], run_epochs: float, where: str) -> list[float]:
    """Each phase's length as a fraction of the run (`run_epochs` long, after any warmup)."""
    given = [p["pct"] if p["pct"] is not None else p["epochs"] for p in phases]
    fracs = [
        None if g is None else (g if p["pct"] is not None else g / run_epochs)
        for p, g in zip(phases, given, strict=True)
    ]
    total = sum(f for f in fracs if f is not None)
    in_epochs = any(p["epochs"] is not None for p in phases)
    shown = (
        f"{total * run_epochs:g} of the run's {run_epochs:g} epochs" if in_epochs else f"{total:g}"
    )
    if None in fracs:
        if total >= 1 - TOLERANCE:
            raise ConfigError(
                f"{where}: the lengths add up to {shown}, leaving nothing for the rest"
            )
        fracs[fracs.index(None)] = 1 - total
    elif abs(total - 1) > TOLERANCE:
        whole = f"the run's {run_epochs:g} epochs" if in_epochs else "1 (the whole run)"
        raise ConfigError(f"{where}: the lengths add up to {shown}, not {whole}")
    return fracs  # type: ignore[return-value]


def _snap(x: float) -> float:
    """A boundary within rounding error of a whole step is that step (so a jump between phases,
    e.g. fine_tune's unfreeze, falls on the step it is meant for)."""
    r = round(x)
    return float(r) if abs(x - r) < 1e-9 * max(1.0, abs(x)) else x


def phase_fn(
    phases: list[dict[str, Any]], n: int, run_epochs: float, convention: str, where: str
) -> LrFn:
    """The phases as a function of the optimizer step over an `n`-step schedule."""
    fracs = _fractions(phases, run_epochs, where)
    cum = [0.0]
    for f in fracs:
        cum.append(cum[-1] + f)
    bounds = [_snap(n * c) for c in cum[:-1]] + [float(n)]
    curves = [
        (lambda s, e, pos, power, f=SHAPES[p["shape"]]: f(s, e, pos, power), p) for p in phases
    ]
    last = len(phases) - 1

    def value(k: int, pos: float) -> float:
        curve, p = curves[k]
        return curve(p["start"], p["end"], pos, p["power"])

    if convention == "fastai":  # combine_scheds: the phase where t starts, position within it

        def fastai_fn(t: float) -> float:
            k = min(max(bisect.bisect_right(bounds, t) - 1, 0), last)
            return value(k, (t - bounds[k]) / (bounds[k + 1] - bounds[k]))

        return fastai_fn

    ends = [b - 1 for b in bounds[1:]]  # OneCycleLR: phase k ends (with its end) on this step
    begins = [0.0, *ends[:-1]]

    def torch_fn(t: float) -> float:
        k = min(bisect.bisect_left(ends, t), last)
        b, e = begins[k], ends[k]
        return value(k, (t - b) / (e - b) if e > b else 1.0)

    return torch_fn


def phases_schedule(p: Params, n: int, spe: int, ref: float) -> tuple[LrFn, MomFn | None]:
    # The run's length in epochs after the warmup: n + warmup steps make the planned epochs.
    warmup = p["warmup_epochs"]
    run_epochs = (n + steps(warmup, spe)) / spe - warmup
    return phase_fn(p["phases"], n, run_epochs, p["convention"], "scheduler.phases"), None
