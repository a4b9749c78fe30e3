"""Optimizer factory: `cfg.optimizer` is a partial `torch.optim` class, built over the model's params."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig


def build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Instantiate `cfg.optimizer` (a `_partial_` torch.optim class) over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    return instantiate(cfg.optimizer)(params)
