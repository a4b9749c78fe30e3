"""`optimizer.lr_scaling`: the peak lr follows the effective batch size.

`optimizer.lr` is the peak for `optimizer.reference_batch_size` samples per optimizer step; a
run whose effective batch size (data.batch_size x trainer.accumulate_grad_batches x
data-parallel processes) differs trains with

- `linear`: lr x effective / reference (Goyal et al. 2017, for SGD),
- `sqrt`:   lr x sqrt(effective / reference) (Krizhevsky 2014; Hoffer et al. 2017; often
  preferred for Adam),
- `none`:   lr as given (the default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from omegaconf import MISSING

from lrlab.errors import ConfigError
from lrlab.parallel import world_size

RULES = ("none", "linear", "sqrt")


@dataclass
class LrScalingConfig:
    """Keys every `optimizer:` config has besides the torch.optim class's arguments."""

    lr_scaling: str = MISSING  # none | linear | sqrt: scale the peak lr with the batch size
    reference_batch_size: int | None = MISSING  # the effective batch size optimizer.lr is for


SCALING_KEYS = tuple(asdict(LrScalingConfig()))


def scaling_settings(optimizer_cfg: Mapping[str, Any], where: str = "optimizer") -> LrScalingConfig:
    """The node's lr scaling keys, checked: one-line errors. The shipped optimizer configs state
    them; a config of your own without them is not scaled."""
    rule = optimizer_cfg.get("lr_scaling") or "none"
    reference = optimizer_cfg.get("reference_batch_size")
    if rule not in RULES:
        raise ConfigError(f"{where}.lr_scaling={rule!r}: must be {' | '.join(RULES)}")
    if reference is not None and (
        isinstance(reference, bool) or not isinstance(reference, int) or reference < 1
    ):
        raise ConfigError(
            f"{where}.reference_batch_size={reference!r}: must be an integer >= 1 or null"
        )
    if rule != "none" and reference is None:
        raise ConfigError(
            f"{where}.lr_scaling={rule} needs {where}.reference_batch_size: the effective batch "
            f"size {where}.lr is meant for (e.g. 256)"
        )
    if rule != "none" and optimizer_cfg.get("lr") == "auto":
        raise ConfigError(
            f"{where}.lr_scaling={rule} scales a given lr; with {where}.lr=auto the LR finder "
            f"measures at this batch size already: set {where}.lr_scaling=none"
        )
    return LrScalingConfig(rule, reference)


def lr_factor(rule: str, effective: int, reference: int | None) -> float:
    if rule == "none" or reference is None:
        return 1.0
    ratio = effective / reference
    return ratio if rule == "linear" else math.sqrt(ratio)


def scaled_peak_lr(
    optimizer_cfg: Mapping[str, Any], batch_size: int, accumulate: int, where: str = "optimizer"
) -> tuple[float | None, dict[str, Any] | None]:
    """(the peak lr to train with, what summary.json records) for `optimizer_cfg`; (None, None)
    when the lr is not scaled (the config's lr, or `auto`, stands)."""
    s = scaling_settings(optimizer_cfg, where)
    if s.lr_scaling == "none":
        return None, None
    processes = world_size()
    effective = batch_size * accumulate * processes
    factor = lr_factor(s.lr_scaling, effective, s.reference_batch_size)
    lr = float(optimizer_cfg["lr"]) * factor
    record = {
        "rule": s.lr_scaling,
        "reference_batch_size": s.reference_batch_size,
        "effective_batch_size": effective,
        "batch_size": batch_size,
        "accumulate_grad_batches": accumulate,
        "world_size": processes,
        "factor": factor,
        "base_lr": float(optimizer_cfg["lr"]),
        "lr": lr,
    }
    return lr, record
