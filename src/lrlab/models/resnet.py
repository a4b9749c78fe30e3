"""A small residual network after David Page's ResNet-9 ("How to train your ResNet", DAWNBench).

Stages of conv-BN-ReLU (+ 2x2 max pool) each followed by `res_blocks[i]` residual blocks of two
conv-BN-ReLU with an identity skip; global pooling and one linear layer. Page's net is
`channels=[64, 128, 256, 512]`, `res_blocks=[0, 1, 0, 1]`, `stem_pool=false`, `pool=max`,
`logit_scale=0.125`; conf/model/resnet9.yaml sizes it for a CPU (half the widths, the stem
pooled). Only convolutions, BatchNorm and pooling: it runs in channels_last as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lrlab.errors import ConfigError

POOLS = {"max": nn.AdaptiveMaxPool2d, "avg": nn.AdaptiveAvgPool2d}


def conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    # bias=False: BatchNorm's shift makes a conv bias redundant.
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class Residual(nn.Module):
    """x + f(x), f two conv-BN-ReLU at the same width."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_bn_relu(channels, channels), *conv_bn_relu(channels, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """`stages[i]`: conv to `channels[i]`, max pool (the first only if `stem_pool`), then
    `res_blocks[i]` residual blocks. Any input size: global pooling ends the features."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        channels: Sequence[int] = (64, 128, 256, 512),
        res_blocks: Sequence[int] = (0, 1, 0, 1),
        stem_pool: bool = False,
        pool: str = "max",
        dropout: float = 0.0,
        logit_scale: float = 0.125,
    ) -> None:
        super().__init__()
        check_settings(channels, res_blocks, pool, dropout, logit_scale)
        stages = []
        widths = [in_channels, *channels]
        for i, (width, blocks) in enumerate(zip(channels, res_blocks, strict=True)):
            layers = conv_bn_relu(widths[i], width)
            if i > 0 or stem_pool:
                layers.append(nn.MaxPool2d(2))
            layers += [Residual(width) for _ in range(blocks)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            POOLS[pool](1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[-1], num_classes)
        )
        # Page scales the logits down (x0.125): a softer start for the softmax, as a lower lr
        # for the head would give.
        self.logit_scale = logit_scale
        self.num_classes = num_classes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.stages(x)) * self.logit_scale

    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """timm-format layer groups (stem, one per stage; the classifier is the head), for
        freezing and layer-wise lrs as with SimpleCNN and timm backbones."""
        return {"stem": r"^stages\.0\.", "blocks": r"^stages\.(\d+)\."}

    def get_classifier(self) -> nn.Module:
        return self.classifier


def check_settings(
    channels: Sequence[int],
    res_blocks: Sequence[int],
    pool: str,
    dropout: float,
    logit_scale: float,
) -> None:
    if not channels or min(channels) < 1:
        raise ConfigError(f"model.channels={list(channels)} must list stage widths >= 1")
    if len(res_blocks) != len(channels) or min(res_blocks) < 0:
        raise ConfigError(
            f"model.res_blocks={list(res_blocks)} must give a count >= 0 for each of the "
            f"{len(channels)} stages of model.channels"
        )
    if pool not in POOLS:
        raise ConfigError(f"model.pool={pool!r} is not one of {sorted(POOLS)}")
    if not 0 <= dropout < 1:
        raise ConfigError(f"model.dropout must be in [0, 1), got {dropout}")
    if logit_scale <= 0:
        raise ConfigError(f"model.logit_scale must be > 0, got {logit_scale}")
