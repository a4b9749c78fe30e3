"""Scheduling optimizer hyper-parameters besides the lr (fastai's `ParamScheduler` as config):
`scheduler.params: {weight_decay: <schedule>, beta2: <schedule>, ...}`.

Two kinds of keys:
- **scaled** (`SCALED_KEYS`: weight_decay; the lr itself works this way): the schedule is a
  multiplier of each param group's own value, so the ratios between groups hold (no-decay
  groups stay at 0, layer-wise values keep their proportions). Absolute values in a built-in
  shape (`eta_min`, ...) are in units of the optimizer's own value of the key.
- **absolute** (every other key: momentum, beta1, beta2, eps, dampening, alpha, ...): every
  group gets the same value. A `phases` schedule gives the values themselves (fastai's
  ParamScheduler: `start: 0.95, end: 0.85`); a built-in shape (cosine, step, ...) multiplies the
  optimizer's configured value (its `eta_min` is then a value of the key).

`momentum` is the SGD/RMSprop momentum or the Adam family's beta1 (as in metrics.jsonl);
`beta1` and `beta2` are the two entries of Adam's `betas`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import torch

from lrlab.errors import ConfigError
from lrlab.optim.planned import planned
from lrlab.optim.schedule_checks import scheduler_params

SCALED_KEYS = ("weight_decay",)
BELOW_ONE = ("momentum", "beta1", "beta2")  # values that must stay in [0, 1)
_BETA_INDEX = {"beta1": 0, "beta2": 1}


def read_key(group: Mapping[str, Any], key: str) -> float:
    if key in _BETA_INDEX:
        return float(group["betas"][_BETA_INDEX[key]])
    if key == "momentum" and "betas" in group:
        return float(group["betas"][0])
    return float(group[key])


def write_key(group: MutableMapping[str, Any], key: str, value: float) -> None:
    if key in _BETA_INDEX or (key == "momentum" and "betas" in group):
        betas = list(group["betas"])
        betas[_BETA_INDEX.get(key, 0)] = value
        group["betas"] = tuple(betas)
    else:
        group[key] = value


def has_key(group: Mapping[str, Any], key: str) -> bool:
    if key in _BETA_INDEX:
        return "betas" in group
    if key == "momentum":
        return "betas" in group or "momentum" in group
    value = group.get(key)
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_key(optimizer: torch.optim.Optimizer, key: str, where: str) -> float:
    """The optimizer's configured value of `key`; a one-line error when it has no such number."""
    name = type(optimizer).__name__
    if key == "betas":
        raise ConfigError(f"{where}.params.betas: schedule beta1 and beta2 as keys of their own")
    if not all(has_key(g, key) for g in optimizer.param_groups):
        numeric = sorted(
            k
            for k, v in optimizer.param_groups[0].items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("lr",)
        )
        extra = ["beta1", "beta2"] if "betas" in optimizer.defaults else []
        raise ConfigError(
            f"{where}.params.{key}: {name}'s param groups have no number {key!r} "
            f"(they have {[*numeric, *extra]})"
        )
    return read_key(optimizer.defaults, key)


@dataclass
class ParamTrack:
    """One scheduled key: `fn(step)` in the schedule's units, applied to every param group."""

    key: str
    fn: Callable[[float], float]
    scaled: bool  # True: each group's own base x fn; False: scale x fn, the same for all
    bases: list[float]  # scaled: each group's value at build time; absolute: [scale]

    def values(self, t: float, n_groups: int) -> list[float]:
        f = self.fn(t)
        if self.scaled:
            return [base * f for base in self.bases]
        return [self.bases[0] * f] * n_groups

    def apply(self, optimizer: torch.optim.Optimizer, t: float) -> None:
        groups = optimizer.param_groups
        for group, value in zip(groups, self.values(t, len(groups)), strict=True):
            write_key(group, self.key, value)


def track_bases(
    optimizer: torch.optim.Optimizer, key: str, schedule_name: str, configured: float
) -> tuple[bool, list[float]]:
    """(scaled, bases) for `key`: scaled keys multiply each group's own value; absolute keys
    take a phases schedule's values as they are and multiply a built-in shape by the optimizer's
    configured value."""
    if key in SCALED_KEYS:
        return True, [read_key(g, key) for g in optimizer.param_groups]
    return False, [1.0 if schedule_name == "phases" else configured]


def build_track(
    key: str,
    node: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    spe: int,
    epochs: int,
    where: str,
) -> ParamTrack:
    at = f"{where}.params.{key}"
    configured = check_key(optimizer, key, where)
    name, params = scheduler_params(node, configured or None, at)
    scaled, bases = track_bases(optimizer, key, name, configured)
    if (scaled or name != "phases") and not configured > 0:
        hint = "" if scaled else " (or give the values themselves with name=phases)"
        raise ConfigError(
            f"{at}: the optimizer's {key} is {configured:g}, and this schedule multiplies it; "
            f"set the optimizer's {key} > 0{hint}"
        )
    if key in BELOW_ONE and name == "phases":
        high = max(
            p["start"] if p["shape"] == "const" else max(p["start"], p["end"])
            for p in params["phases"]
        )
        if high >= 1:
            raise ConfigError(f"{at}.phases: {key} must stay below 1, a phase reaches {high:g}")
    fn, _ = planned(name, params, spe, epochs, configured or 1.0, at)
    return ParamTrack(key, fn, scaled, bases)
