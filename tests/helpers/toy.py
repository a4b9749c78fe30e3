"""A model, a data set and a callback as a user adds them: plain Python, named by `_target_`."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset

from lrlab.callbacks import Callback
from lrlab.data import DataSets


class TinyNet(nn.Module):
    """A user's model: takes the explicit arguments it needs (no image_size)."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def blobs(n: int = 64, image_size: int = 8, classes: int = 3, seed: int = 0) -> DataSets:
    """A user's data set: noisy images whose mean depends on the class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 1, image_size, image_size, generator=g) * 0.3 + y[:, None, None, None]
    half = n * 3 // 4
    return DataSets(
        train=TensorDataset(x[:half], y[:half]),
        val=TensorDataset(x[half:], y[half:]),
        class_names=[str(c) for c in range(classes)],
        in_channels=1,
        image_size=image_size,
    )


class CountSteps(Callback):
    """A user's callback: counts optimizer steps and writes the count next to the records."""

    def __init__(self, filename: str = "steps.txt") -> None:
        self.filename, self.steps = filename, 0

    def on_step_end(self, state, result) -> None:
        self.steps += 1

    def on_fit_end(self, state) -> None:
        (state.run_dir / self.filename).write_text(str(self.steps))
