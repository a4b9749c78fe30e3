"""A schedule's functions over its planned steps: warmup first, the schedule over the rest, its
last planned values past the plan; and the epoch clock for epochs of different lengths."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

from lrlab.errors import ConfigError
from lrlab.optim.schedule_checks import bad_value
from lrlab.optim.schedules import SCHEDULES, LrFn, MomFn, Params, steps

Clock = Callable[[int], float]  # optimizer step -> the step the schedule is evaluated at


def _with_warmup(
    lr_fn: LrFn, mom_fn: MomFn | None, warmup: int, start: float
) -> tuple[LrFn, MomFn | None]:
    """Linear warmup from `start` x the schedule's first value to it, then the schedule."""
    first = lr_fn(0)

    def lr(t: float) -> float:
        return first * (start + (1 - start) * t / warmup) if t < warmup else lr_fn(t - warmup)

    if mom_fn is None:
        return lr, None
    return lr, (lambda t: mom_fn(max(0, t - warmup)))


def planned(
    name: str, params: Params, spe: int, epochs: int, ref: float, where: str
) -> tuple[LrFn, MomFn | None]:
    """The schedule's functions over the planned steps: warmup first, then the schedule over
    the remaining steps, then (a resumed run with more epochs) its last planned step's values."""
    total = spe * epochs
    warmup = steps(params["warmup_epochs"], spe)
    if warmup >= total:
        raise bad_value(
            "warmup_epochs",
            params["warmup_epochs"],
            f"leaves no steps of the {epochs}-epoch run",
            where,
        )
    try:
        lr_fn, mom_fn = SCHEDULES[name][0](params, total - warmup, spe, ref)
    except ConfigError as e:  # a factory names the key as `scheduler.<key>`
        raise ConfigError(str(e).replace("scheduler.", f"{where}.", 1)) from None
    if warmup:
        lr_fn, mom_fn = _with_warmup(lr_fn, mom_fn, warmup, params["warmup_start_factor"])
    last = total - 1
    return (
        lambda t: lr_fn(min(t, last)),
        None if mom_fn is None else (lambda t: mom_fn(min(t, last))),
    )


def epoch_clock(epoch_steps: Sequence[int] | None, spe: int) -> Clock | None:
    """Step t of epoch e, j steps in, as the step (e + j / steps of epoch e) * spe of a run with
    `spe` steps in every epoch; None when every epoch has `spe` steps."""
    if not epoch_steps or all(s == spe for s in epoch_steps):
        return None
    lengths = list(epoch_steps)
    starts = [0]
    for s in lengths:
        starts.append(starts[-1] + s)

    def clock(t: int) -> float:
        if t >= starts[-1]:  # past the plan: the last epoch's length goes on
            e, j = divmod(t - starts[-1], lengths[-1])
            return (len(lengths) + e + j / lengths[-1]) * spe
        e = bisect.bisect_right(starts, t) - 1
        return (e + (t - starts[e]) / lengths[e]) * spe

    return clock
