"""The composed config: its schemas (registered with Hydra's ConfigStore) and the checks that
run before any work starts.

Each package defines the schema of its own config group (`data.digits.DigitsConfig`,
`engine.config.TrainerConfig`, ...), with the defaults; `TrainConfig` puts them together.
The YAML files in conf/ pick a schema (`defaults: [/schema/data/imagefolder@_here_]`) and set
what differs. A misspelt key fails at composition (Hydra) or in `check_config` (keys added with
`+`, and `_target_` nodes without a schema, checked against the target's signature).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from lrlab.data.augment import AugmentConfig
from lrlab.data.digits import DigitsConfig
from lrlab.data.folder import ImageFolderConfig
from lrlab.data.loaders import LOADER_KEYS
from lrlab.data.resizing import ResizingConfig, check_stages_fit
from lrlab.data.torchvision_sets import (
    Cifar10Config,
    Cifar100Config,
    FashionMnistConfig,
    MnistConfig,
)
from lrlab.engine.config import TrainerConfig, check_compile_backend
from lrlab.errors import ConfigError
from lrlab.lr_finder import LrFindConfig
from lrlab.models.factory import TRAINING_KEYS
from lrlab.models.simple_cnn import SimpleCNNConfig
from lrlab.models.timm_backbone import TimmConfig
from lrlab.optim.optimizer import SCALING_KEYS, check_optimizer_arguments, scaling_settings
from lrlab.optim.scheduler import RESERVED_KEYS as SCHEDULER_KEYS
from lrlab.optim.scheduler import check_scheduler
from lrlab.optim.switch import OptimizerSwitchConfig, check_switch, is_switching
from lrlab.tasks.evaluate import EvalConfig
from lrlab.tracking import LoggerConfig
from lrlab.utils import import_target, is_number


@dataclass
class PathsConfig:
    root_dir: str = MISSING  # the PROJECT_ROOT environment variable, else .
    data_dir: str = MISSING  # downloads and caches
    log_dir: str = MISSING  # every run's own dir is created below it
    output_dir: str = MISSING  # the run's own dir (set by Hydra: read it, don't set it)


@dataclass
class ExtrasConfig:
    """`extras:` what a run does around its work (as lightning-hydra-template's)."""

    print_config: bool = MISSING  # the composed config as a rich tree at the start


@dataclass
class TrainConfig:
    """The root of `conf/train.yaml` (and `conf/find_lr.yaml`)."""

    seed: int = MISSING  # seeds Python, NumPy, torch and the loader's shuffling
    optimized_metric: str = MISSING  # the summary.json key a sweep returns to its sweeper
    tags: list[str] = MISSING
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: Any = MISSING  # a data set: _target_ + its arguments (conf/data/)
    model: Any = MISSING  # a model: _target_ + its arguments (conf/model/)
    optimizer: Any = MISSING  # a partial torch.optim class (conf/optimizer/)
    scheduler: Any = MISSING  # a schedule by _target_ + warmup and params (conf/scheduler/)
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    lr_find: LrFindConfig = MISSING
    callbacks: dict[str, Any] = MISSING  # name -> _target_ + arguments
    resizing: ResizingConfig = MISSING  # image sizes per epoch or batch
    optimizer_switch: Any = MISSING  # empty, or a second optimizer + schedule
    augment: AugmentConfig = MISSING  # training augmentation (conf/augment/)
    extras: ExtrasConfig = MISSING  # what a run does around its work (print_config)


SCHEMAS = {
    "data": {
        "digits": DigitsConfig,
        "imagefolder": ImageFolderConfig,
        "cifar10": Cifar10Config,
        "cifar100": Cifar100Config,
        "mnist": MnistConfig,
        "fashion_mnist": FashionMnistConfig,
    },
    "model": {"simple_cnn": SimpleCNNConfig, "timm": TimmConfig},
}
# Keys of a `_target_` node that are not the target's arguments.
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
# By the node's key: lrlab's own keys of a `_target_` node, not passed to the target.
RESERVED = {
    "data": LOADER_KEYS,
    "model": TRAINING_KEYS,
    "optimizer": SCALING_KEYS,
    "scheduler": SCHEDULER_KEYS,
}


def register_configs() -> None:
    """Make the schemas known to Hydra (idempotent); the entry points call it on import."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("lrlab.join"):  # `${lrlab.join:${tags}}` in a run-dir name
        OmegaConf.register_new_resolver("lrlab.join", join_tags)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    for group, schemas in SCHEMAS.items():
        for name, schema in schemas.items():
            cs.store(group=f"schema/{group}", name=name, node=schema)
    cs.store(group="schema/optimizer_switch", name="default", node=OptimizerSwitchConfig)


def join_tags(tags: Any, separator: str = "-") -> str:
    """`[a, b]` -> `a-b` (`untagged` for none): tags as one path-safe name."""
    names = [str(t).replace("/", "_") for t in (tags or [])]
    return separator.join(names) or "untagged"


def check_config(cfg: DictConfig) -> None:
    """Unknown keys and bad values, as one-line ConfigErrors naming the key."""
    check_known_keys(cfg, "")
    check_values(cfg)
    for name, node in (cfg.get("callbacks") or {}).items():
        if not (isinstance(node, DictConfig) and node.get("_target_")):
            raise ConfigError(f"callbacks.{name} needs a _target_ (a Callback class)")
    if not (isinstance(cfg.seed, int) and 0 <= cfg.seed < 2**32):  # numpy's seed range
        raise ConfigError(f"seed={cfg.seed!r} must be an integer in [0, 2**32)")
    check_optimizer_arguments(OmegaConf.to_container(cfg.optimizer, resolve=True))
    lr = cfg.optimizer.get("lr")
    if lr != "auto" and (not is_number(lr) or lr <= 0):
        raise ConfigError(f"optimizer.lr must be a number > 0 (or 'auto'), got {lr!r}")
    check_scheduler(cfg.scheduler)
    scaling_settings(cfg.optimizer)
    if cfg.trainer.compile:
        check_compile_backend(str(cfg.trainer.compile_backend))
    if cfg.get("resizing"):
        check_stages_fit(OmegaConf.to_object(cfg.resizing), cfg.trainer.epochs)
    if is_switching(cfg.get("optimizer_switch")):
        switch = OmegaConf.to_container(cfg.optimizer_switch, resolve=True)
        check_switch(switch, cfg.trainer.epochs)
        check_optimizer_arguments(switch["optimizer"], "optimizer_switch.optimizer")


def check_values(node: DictConfig) -> None:
    """Run every schema's range checks (`__post_init__`, called by `OmegaConf.to_object`)."""
    if hasattr(OmegaConf.get_type(node), "__post_init__"):
        OmegaConf.to_object(node)  # checks the nested schemas too
        return
    for _, child in node.items_ex(resolve=False):
        if isinstance(child, DictConfig) and not child._is_none():
            check_values(child)


def check_known_keys(node: DictConfig, path: str) -> None:
    schema = OmegaConf.get_type(node)
    if is_dataclass(schema):
        allowed = [f.name for f in fields(schema)]
    elif "_target_" in node:
        allowed = target_arguments(node, path)
    else:
        allowed = None
    if allowed is not None:
        for key in node:
            if key not in allowed:
                raise unknown_key(f"{path}{key}", allowed, path)
    for key, child in node.items_ex(resolve=False):
        if isinstance(child, DictConfig) and not child._is_none():
            check_known_keys(child, f"{path}{key}.")


def target_arguments(node: DictConfig, path: str) -> list[str] | None:
    """The keys a `_target_` node may have: the target's keyword arguments (None: any)."""
    target = import_target(str(node._target_), f"{path}_target_")
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None  # a builtin without a signature: leave it to the call
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    node_key = path.rstrip(".").split(".")[-1]  # optimizer, optimizer_switch.optimizer: optimizer
    return [*HYDRA_KEYS, *RESERVED.get(node_key, ()), *(p.name for p in params)]


def unknown_key(key: str, allowed: list[str], path: str) -> ConfigError:
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, [a for a in allowed if not a.startswith("_")], n=1)
    hint = f"; did you mean {path}{close[0]}?" if close else ""
    where = path.rstrip(".") or "the config"
    return ConfigError(f"{key} is not a key of {where}{hint} (`--cfg job` shows them all)")
