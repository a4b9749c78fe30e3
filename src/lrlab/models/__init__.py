"""Model factory: `build_model(cfg.model, ...)` dispatches on `cfg.model.name`
(`cfg.model.library: timm`: `name` is any timm architecture)."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from lrlab.errors import ConfigError
from lrlab.models.simple_cnn import SimpleCNN


def build_model(
    model_cfg: DictConfig, num_classes: int, in_channels: int, image_size: int
) -> nn.Module:
    if model_cfg.get("library") == "timm":
        from lrlab.models.timm_backbone import build_timm_model  # timm imports lazily

        return build_timm_model(model_cfg, num_classes, in_channels, image_size)
    if model_cfg.name == "simple_cnn":
        return SimpleCNN(
            num_classes=num_classes,
            in_channels=in_channels,
            channels=tuple(model_cfg.channels),
            hidden=model_cfg.hidden,
            dropout=model_cfg.dropout,
            init=model_cfg.init,
        )
    raise ConfigError(
        f"model.name={model_cfg.name!r} is unknown; use model=simple_cnn or model=timm"
    )
