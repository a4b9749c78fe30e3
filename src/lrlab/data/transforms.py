"""torchvision transforms for image data sets, and reading image files with clear errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from lrlab.errors import ConfigError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def image_transforms(
    size: int, mean: list[float], std: list[float], augment: Mapping[str, Any]
) -> tuple[Callable, Callable]:
    """(train, val): the `augment` group's per-sample ops (lrlab.data.augment) then the tensor
    and normalisation, then random erasing; val: resize + center crop. `train is val` when
    nothing augments."""
    from torchvision.transforms import v2

    from lrlab.data.augment import random_erasing, sample_ops

    to_tensor = normalize_transforms(mean, std)
    val = v2.Compose([*val_geometry(size), *to_tensor])
    ops, erasing = sample_ops(augment), random_erasing(augment)
    if not ops and not erasing:
        return val, val
    return v2.Compose([*(ops or val_geometry(size)), *to_tensor, *erasing]), val


def val_geometry(size: int) -> list[Callable]:
    from torchvision.transforms import v2

    return [v2.Resize(size, antialias=True), v2.CenterCrop(size)]


def normalize_transforms(mean: list[float], std: list[float]) -> list[Callable]:
    from torchvision.transforms import v2

    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def load_rgb(path: str):
    """The image as RGB (what ImageFolder's loader does), or a ConfigError naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except Exception as e:  # PIL raises several types for broken files
        raise ConfigError(f"unreadable image file {path}: {e}") from None


def check_images(files: list[str]) -> None:
    """Open every image before training, so a broken one is named now, not mid-epoch."""
    for f in files:
        load_rgb(f)
