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
from dataclasses import asdict, dataclass, field, fields, is_dataclass
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
from lrlab.engine.config import TrainerConfig
from lrlab.errors import ConfigError
from lrlab.lr_finder import LrFindConfig
from lrlab.models.factory import TRAINING_KEYS
from lrlab.models.simple_cnn import SimpleCNNConfig
from lrlab.models.timm_backbone import TimmConfig
from lrlab.optim.lr_scaling import SCALING_KEYS, LrScalingConfig, scaling_settings
from lrlab.optim.schedule_checks import scheduler_params
from lrlab.optim.schedules import SCHEDULES
from lrlab.optim.switch import OptimizerSwitchConfig, check_switch, is_switching
from lrlab.tasks.evaluate import EvalConfig
from lrlab.tracking import LoggerConfig


@dataclass
class PathsConfig:
    root_dir: str = MISSING  # the PROJECT_ROOT environment variable, else .
    data_dir: str = MISSING  # downloads and caches
    log_dir: str = MISSING  # every run's own dir is created below it
    output_dir: str = MISSING  # the run's own dir (set by Hydra: read it, don't set it)


@dataclass
class ExtrasConfig:
    """`extras:` what a run does around its work (as lightning-hydra-template's)."""

    print_config: bool = True  # the composed config as a rich tree at the start


@dataclass
class TrainConfig:
    """The root of `conf/train.yaml` (and `conf/find_lr.yaml`)."""

    seed: int = 42  # seeds Python, NumPy, torch and the loader's shuffling
    # The summary.json key a sweep returns to its sweeper (what hparams_search optimises)
    optimized_metric: str = "best_val_acc"
    tags: list[str] = field(default_factory=list)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: Any = MISSING  # a data set: _target_ + its arguments (conf/data/)
    model: Any = MISSING  # a model: _target_ + its arguments (conf/model/)
    optimizer: Any = MISSING  # a partial torch.optim class (conf/optimizer/)
    scheduler: Any = MISSING  # a schedule by name (conf/scheduler/)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    lr_find: LrFindConfig = field(default_factory=LrFindConfig)
    callbacks: dict[str, Any] = field(default_factory=dict)  # name -> _target_ + arguments
    resizing: ResizingConfig = field(default_factory=ResizingConfig)  # image sizes per epoch/batch
    optimizer_switch: Any = field(default_factory=dict)  # empty, or a second optimizer + schedule
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training augmentation
    extras: ExtrasConfig = field(default_factory=ExtrasConfig)


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
    "scheduler": {name: schema for name, (_, schema) in SCHEDULES.items()},
}
# Keys of a `_target_` node that are not the target's arguments.
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
# By the node's key: lrlab's own keys of a `_target_` node, not passed to the target.
RESERVED = {"data": LOADER_KEYS, "model": TRAINING_KEYS, "optimizer": SCALING_KEYS}


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
    # A plain node (not a dataclass): optimizer configs also hold the torch class's arguments.
    cs.store(group="schema/optimizer", name="lr_scaling", node=asdict(LrScalingConfig()))
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
    lr = cfg.optimizer.get("lr")
    if lr != "auto" and (not is_number(lr) or lr <= 0):
        raise ConfigError(f"optimizer.lr must be a number > 0 (or 'auto'), got {lr!r}")
    scheduler_params(cfg.scheduler, None if lr == "auto" else lr)
    scaling_settings(cfg.optimizer)
    if cfg.get("resizing"):
        check_stages_fit(OmegaConf.to_object(cfg.resizing), cfg.trainer.epochs)
    if is_switching(cfg.get("optimizer_switch")):
        check_switch(OmegaConf.to_container(cfg.optimizer_switch, resolve=True), cfg.trainer.epochs)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    from hydra.utils import get_object

    try:
        target = get_object(node._target_)
    except Exception as e:
        raise ConfigError(f"{path}_target_={node._target_!r} cannot be imported: {e}") from None
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
