"""`build_model`: instantiate `cfg.model`'s `_target_`; `ModelConfig`: the keys every model has."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from torch import nn

from lrlab.errors import ConfigError
from lrlab.utils import instantiate


@dataclass
class ModelConfig:
    """How a model trains, whatever it is: freezing (fastai's freeze_to / fine_tune) and
    layer-wise learning rates. Every other key of `model:` goes to the `_target_`."""

    _target_: str = MISSING
    freeze: Any = MISSING  # none | all_but_head | all_but_last_stage | int n (fastai freeze_to(n))
    fine_tune: bool = MISSING  # true: `freeze` for freeze_epochs epochs, then everything trains
    freeze_epochs: int = MISSING  # epochs before fine_tune's unfreeze
    frozen_bn_eval: bool = MISSING  # frozen BatchNorm layers stay in eval mode (running stats kept)
    lr_mult: float = MISSING  # stem lr = optimizer.lr / lr_mult, geometric in between
    lr_scales: list[float] | None = MISSING  # or explicit lr factors per layer group, stem first
    no_weight_decay_norm_bias: bool = MISSING  # no weight decay on biases and norm weights


TRAINING_KEYS = tuple(f.name for f in fields(ModelConfig) if f.name != "_target_")


def training_settings(model_cfg: Mapping[str, Any]) -> ModelConfig:
    """The training keys of `model_cfg` as a typed `ModelConfig` (what the builders take); the
    values live in the YAML (conf/model/training/default.yaml), a model config includes them."""
    missing = [k for k in TRAINING_KEYS if k not in model_cfg]
    if missing:
        raise ConfigError(
            f"model.{missing[0]} is not set: a model config takes the training keys with "
            "`defaults: [/model/training@_here_: default, _self_]` (conf/model/training/)"
        )
    plain = (
        OmegaConf.to_container(model_cfg, resolve=True)
        if isinstance(model_cfg, DictConfig)
        else dict(model_cfg)
    )
    return ModelConfig(_target_=str(plain["_target_"]), **{k: plain[k] for k in TRAINING_KEYS})


def build_model(
    model_cfg: DictConfig, num_classes: int, in_channels: int, image_size: int
) -> nn.Module:
    """`model_cfg._target_(**architecture keys, num_classes=, in_channels=[, image_size=])`."""
    from hydra.utils import get_object

    if not model_cfg.get("_target_"):
        raise ConfigError("model._target_ is not set: name a model class or factory function")
    target = get_object(model_cfg._target_)
    explicit: dict[str, Any] = {"num_classes": num_classes, "in_channels": in_channels}
    if "image_size" in inspect.signature(target).parameters:
        explicit["image_size"] = image_size
    kwargs = {k: v for k, v in model_cfg.items() if k not in TRAINING_KEYS}
    model = instantiate(OmegaConf.create(kwargs), **explicit, _convert_="all")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model._target_={model_cfg._target_!r} did not return an nn.Module")
    return model
