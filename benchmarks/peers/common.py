"""What the peer scripts share: lrlab's flowers split, its channel statistics and its SimpleCNN.
Deliberately free of lrlab imports, so each peer script starts up like a script a user
writes (torch, torchvision, sklearn only)."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

# Per-channel mean/std of the flowers train split at 64 px, as lrlab's `channel_stats` computes
# them for data.split_seed=0 (the peers normalise with the same numbers; speed does not depend
# on them, accuracy comparisons do).
FLOWERS_MEAN = (0.45953270443430716, 0.420976198090223, 0.3093336864687898)
FLOWERS_STD = (0.2650365651593809, 0.2384747701231094, 0.254968872609599)
SEED = 42  # lrlab's default `seed`


def stratified_split(labels: list[int], val_fraction: float = 0.2, seed: int = 0):
    """lrlab's split (src/lrlab/data/split.py `stratified_split`): sklearn, stratified, sorted."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train_idx, val_idx = train_test_split(
        indices, test_size=val_fraction, stratify=labels, random_state=seed
    )
    return sorted(train_idx.tolist()), sorted(val_idx.tolist())


# --- lrlab's SimpleCNN with its defaults (channels 32-64-128, hidden 128, dropout 0.25, kaiming),
# copied so that the peers import no lrlab; tests/unit/test_peers.py checks that it is the same net.


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SimpleCNN(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, channels=(32, 64, 128)) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.features = nn.Sequential(*(conv_block(a, b) for a, b in itertools.pairwise(widths)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(widths[-1], 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.25),
            nn.Linear(128, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(
                    m.weight,
                    mode="fan_out" if m.weight.ndim == 4 else "fan_in",
                    nonlinearity="relu",
                )
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))
