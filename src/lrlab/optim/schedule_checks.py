"""Checking a `scheduler:` config: its name, its keys and every value, before any work starts."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import torch

from lrlab.errors import ConfigError
from lrlab.optim.annealers import ANNEALERS
from lrlab.optim.phases import CONVENTIONS, check_phases
from lrlab.optim.schedules import SCHEDULES, Params


def reference_lr(optimizer: torch.optim.Optimizer) -> float:
    """The optimizer's own lr (`optimizer.lr` in the config), which absolute config lrs refer to."""
    lr = optimizer.defaults.get("lr")
    if lr is None:
        group = optimizer.param_groups[0]
        lr = group.get("initial_lr", group["lr"])
    return float(lr)


def bad_value(key: str, value: Any, why: str, where: str = "scheduler") -> ConfigError:
    return ConfigError(f"{where}.{key}={value!r}: {why}")


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
    "convention": (lambda v, ref: v in CONVENTIONS, "must be fastai | torch"),
}
# Schedules that cannot drive a hyper-parameter other than the lr (plateau acts on the lr).
LR_ONLY = ("plateau",)


def cycles_momentum(setting: bool | None, optimizer: torch.optim.Optimizer) -> bool:
    """null (auto): cycle Adam-family beta1, or SGD/RMSprop momentum when it is nonzero."""
    d = optimizer.defaults
    if setting is None:
        return "betas" in d or float(d.get("momentum", 0.0)) > 0
    if setting and "betas" not in d and "momentum" not in d:
        raise bad_value(
            "cycle_momentum", True, f"{type(optimizer).__name__} has no momentum or betas to cycle"
        )
    return bool(setting)


def scheduler_params(
    sched_cfg: Mapping[str, Any], optimizer_lr: float | None = None, where: str = "scheduler"
) -> tuple[str, Params]:
    """The schedule's name and its parameters with the defaults filled in, checked: a bad name,
    key or value is a one-line `ConfigError` naming it (`where`: the config key of the schedule).
    `optimizer_lr` bounds the absolute lrs (`eta_min`, ...); leave it None where it is not known
    yet (`optimizer.lr=auto`). The other hyper-parameters' schedules (`params`) are checked here
    too but not returned: `param_schedule_configs` gives them."""
    cfg = _plain(sched_cfg)
    name = cfg.pop("name", None)
    if name not in SCHEDULES:
        raise ConfigError(f"{where}.name={name!r} is unknown; choose one of {sorted(SCHEDULES)}")
    params = asdict(SCHEDULES[name][1]())
    params.pop("name")
    unknown = sorted(set(cfg) - set(params))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]} is not a parameter of scheduler {name!r} "
            f"(it takes {sorted(params)})"
        )
    params.update(cfg)
    ref = math.inf if optimizer_lr is None else optimizer_lr
    for key, value in params.items():
        if key == "phases":
            params[key] = check_phases(value, f"{where}.phases")
        elif key == "params":
            param_schedule_configs(value, where)
        else:
            ok, why = _RULES[key]
            if not ok(value, ref):
                raise bad_value(key, value, why.format(ref=ref), where)
    params.pop("params")
    return name, params


def param_schedule_configs(params: Any, where: str = "scheduler") -> dict[str, dict[str, Any]]:
    """`<where>.params`: hyper-parameter key -> its schedule config, each checked (a schedule
    of its own, without `params`); the lr is the schedule's own."""
    if params is None:
        return {}
    params = _plain(params) if isinstance(params, Mapping) else params
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.params={params!r}: must map hyper-parameter keys to schedules")
    out = {}
    for key, node in params.items():
        at = f"{where}.params.{key}"
        if key == "lr":
            raise ConfigError(f"{at}: the lr is {where} itself; params schedules the other keys")
        if not isinstance(node, Mapping):
            raise ConfigError(f"{at}={node!r}: must be a schedule (name: phases | cosine | ...)")
        node = _plain(node)
        if node.get("params"):
            raise ConfigError(f"{at}.params: a hyper-parameter's schedule has no params of its own")
        if node.get("name") in LR_ONLY:
            raise ConfigError(f"{at}.name={node['name']!r}: it adapts the lr only; use another")
        scheduler_params(node, None, at)
        out[str(key)] = node
    return out


def _plain(cfg: Mapping[str, Any]) -> dict[str, Any]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
