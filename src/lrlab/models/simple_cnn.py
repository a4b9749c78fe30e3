"""The seed study's "vanilla CNN": conv-BN-ReLU-pool blocks and a dropout MLP head."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch import nn

from lrlab.errors import ConfigError
from lrlab.models.factory import ModelConfig

INITS = ("kaiming", "xavier", "default")


@dataclass
class SimpleCNNConfig(ModelConfig):
    """The seed study's "vanilla CNN" (`model=simple_cnn`)."""

    _target_: str = MISSING
    channels: list[int] = MISSING  # one block per entry
    hidden: int = MISSING  # width of the hidden linear layer
    dropout: float = MISSING  # dropout before each linear layer
    init: str = MISSING  # kaiming | xavier | default (PyTorch's)

    def __post_init__(self) -> None:
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"model.channels={self.channels} must list block widths >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.init not in INITS:
            raise ConfigError(f"model.init={self.init!r} is not one of {list(INITS)}")


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # bias=False: BatchNorm's shift makes a conv bias redundant.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SimpleCNN(nn.Module):
    """Works for any input size and channel count: global average pooling ends the features."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        channels: Sequence[int],
        hidden: int,
        dropout: float,
        init: str,
    ) -> None:
        super().__init__()
        if not channels:
            raise ConfigError("model.channels must list at least one block width")
        widths = [in_channels, *channels]
        self.features = nn.Sequential(*(conv_block(a, b) for a, b in itertools.pairwise(widths)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(widths[-1], hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        self.num_classes = num_classes
        init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))

    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """Layer groups in timm's format (stem, blocks; the rest is the head), so that
        `timm.models.group_parameters` treats this model like any timm backbone."""
        return {"stem": r"^features\.0\.", "blocks": r"^features\.(\d+)\."}

    def get_classifier(self) -> nn.Module:
        return self.classifier


def init_weights(model: nn.Module, scheme: str) -> None:
    inits = {
        # fan_out for convs as torchvision's ResNets; fan_in keeps the head's logits small.
        "kaiming": lambda w: nn.init.kaiming_normal_(
            w, mode="fan_out" if w.ndim == 4 else "fan_in", nonlinearity="relu"
        ),
        "xavier": nn.init.xavier_uniform_,
        "default": None,
    }
    if scheme not in inits:
        raise ConfigError(f"model.init={scheme!r} is not one of {sorted(inits)}")
    if inits[scheme] is None:
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            inits[scheme](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
