"""`optimizer_switch`: hand the run over to a second optimizer with its own schedule ("Adam,
then SGD"). The schema and its checks; the callback is `lrlab.callbacks.OptimizerSwitch`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from lrlab.errors import ConfigError
from lrlab.optim.optimizer import scaling_settings
from lrlab.optim.scheduler import check_scheduler
from lrlab.utils import is_number

WHERE = "optimizer_switch"


@dataclass
class OptimizerSwitchConfig:
    """conf/optimizer_switch/<name>.yaml; `optimizer_switch=none` (an empty node): no switch."""

    epoch: int = MISSING  # the second optimizer takes over after this many epochs
    optimizer: Any = MISSING  # a conf/optimizer option; its lr is the new peak
    scheduler: Any = MISSING  # a conf/scheduler option, run over the remaining epochs


def is_switching(node: Mapping[str, Any] | None) -> bool:
    return bool(node)


def check_switch(node: Mapping[str, Any], epochs: int) -> None:
    """One-line errors for a switch config; `epochs`: trainer.epochs."""
    epoch = node.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch < epochs:
        raise ConfigError(
            f"{WHERE}.epoch={epoch!r}: must be an integer in [1, trainer.epochs={epochs}) "
            "so that both optimizers train"
        )
    optimizer = node.get("optimizer")
    if not isinstance(optimizer, Mapping) or not optimizer.get("_target_"):
        raise ConfigError(
            f"{WHERE}.optimizer needs a _target_ (e.g. optimizer@{WHERE}.optimizer=sgd)"
        )
    lr = optimizer.get("lr")
    if not is_number(lr) or lr <= 0:
        raise ConfigError(
            f"{WHERE}.optimizer.lr={lr!r}: must be a number > 0 (the LR finder runs only for "
            "the first optimizer)"
        )
    scaling_settings(optimizer, f"{WHERE}.optimizer")
    scheduler = node.get("scheduler")
    if not isinstance(scheduler, Mapping):
        raise ConfigError(f"{WHERE}.scheduler is not set (e.g. scheduler@{WHERE}.scheduler=cosine)")
    check_scheduler(scheduler, f"{WHERE}.scheduler")


def describe(node: Mapping[str, Any]) -> dict[str, Any]:
    """What summary.json records about the switch."""
    return {
        "epoch": node["epoch"],
        "optimizer": str(node["optimizer"]["_target_"]).rsplit(".", 1)[-1],
        "lr": node["optimizer"]["lr"],
        "scheduler": str(node["scheduler"]["_target_"]).rsplit(".", 1)[-1].lower(),
    }
