"""What every schedule shares: the base schema, the factory signature, epochs as steps."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

LrFn = Callable[[float], float]  # optimizer step -> multiplier of the peak lr
MomFn = Callable[[float], float]  # optimizer step -> momentum (SGD momentum or Adam beta1)
Params = dict[str, Any]
# (checked parameters, steps the schedule runs, steps per epoch, the optimizer's own value)
Factory = Callable[[Params, int, int, float], tuple[LrFn, MomFn | None]]


@dataclass
class ScheduleConfig:
    name: str = MISSING
    warmup_epochs: float = 0.0  # linear warmup over this many epochs first
    warmup_start_factor: float = 0.0  # warmup starts at this fraction of the schedule's first lr
    # Other optimizer hyper-parameters scheduled alongside the lr: param-group key (weight_decay,
    # momentum, beta1, beta2, ...) -> a schedule config (docs/schedules.md, "Any hyper-parameter").
    params: dict[str, Any] = field(default_factory=dict)


def steps(epochs: float, spe: int) -> int:
    """Epochs (fractions allowed) as optimizer steps, rounding halves up."""
    return math.floor(epochs * spe + 0.5)


def duration(epochs: float, spe: int) -> int:
    """A positive duration in epochs as a whole number (at least 1) of optimizer steps."""
    return max(1, steps(epochs, spe))
