"""scikit-learn's bundled handwritten digits: 1797 real 8x8 grayscale images, no download."""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING
from torch.utils.data import TensorDataset

from lrlab.data.augment import effective_augment, random_erasing, sample_ops
from lrlab.data.loaders import DataConfig, DataSets
from lrlab.data.split import check_split_settings, remembered_split
from lrlab.errors import ConfigError


@dataclass
class DigitsConfig(DataConfig):
    _target_: str = MISSING
    name: str = MISSING
    batch_size: int = MISSING
    image_size: int = MISSING  # the 8x8 images are upsampled to this
    val_fraction: float = MISSING
    split_seed: int = MISSING  # the split stays fixed across `seed`
    test_fraction: float = MISSING  # >0: a stratified held-out test split (eval.py), taken first
    augment: bool = MISSING  # false: train without the augment group's batch transform
    augmentation: Any = MISSING  # the `augment` group: only its batch part (mixup, cutmix)
    cache_dir: str = MISSING  # the split is remembered in <cache_dir>/split_cache/

    def __post_init__(self) -> None:
        super().__post_init__()
        check_split_settings(self.val_fraction, self.image_size, self.split_seed)
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in [0, 1), got {self.test_fraction}")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's `load_digits()` images (N, 8, 8) and targets, read from the CSV it bundles
    as `load_digits` reads it, without importing scikit-learn: that import (with SciPy and
    pandas) was about 2 s of the default run's start-up."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("data=digits needs scikit-learn (its bundled digits.csv.gz)")
    path = Path(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)


def digits(
    image_size: int,
    val_fraction: float,
    split_seed: int,
    test_fraction: float = 0.0,
    augment: bool = True,
    augmentation: Any = None,
    cache_dir: str | None = None,
) -> DataSets:
    """Upsampled to `image_size`, stratified split, normalised with the train split's mean/std.
    With `cache_dir`, the split is remembered there (a later run skips importing scikit-learn)."""
    chosen = effective_augment(augmentation, augment)
    if sample_ops(chosen) or random_erasing(chosen):  # the images are tensors, not photos
        raise ConfigError(
            f"data=digits takes no per-sample augmentation (augment={chosen.get('name')}): use "
            "augment=none, with augment/batch=mixup or cutmix if you like"
        )

    digit_images, target = load_digits()
    images = torch.tensor(digit_images, dtype=torch.float32).unsqueeze(1) / 16.0  # N,1,8,8
    images = torch.nn.functional.interpolate(
        images, size=(image_size, image_size), mode="bilinear", align_corners=False
    )
    labels = torch.tensor(target, dtype=torch.long)

    def split(indices: np.ndarray, fraction: float, key: str) -> tuple[list, list]:
        ids = [f"digits/{i}" for i in indices]  # which images, for the remembered split's key
        return remembered_split(ids, target[indices], fraction, split_seed, cache_dir, key)

    kept, test_idx = np.arange(len(labels)), np.array([], dtype=int)
    if test_fraction:
        kept_pos, test_pos = split(kept, test_fraction, "data.test_fraction")
        kept, test_idx = kept[kept_pos], kept[test_pos]
    train_pos, val_pos = split(kept, val_fraction, "data.val_fraction")
    train_idx, val_idx = kept[train_pos], kept[val_pos]
    train_images = images[train_idx]
    mean, std = train_images.mean(), train_images.std()  # train split only: no val leakage
    images = (images - mean) / std
    return DataSets(
        train=TensorDataset(images[train_idx], labels[train_idx]),
        val=TensorDataset(images[val_idx], labels[val_idx]),
        class_names=[str(d) for d in range(10)],
        in_channels=1,
        image_size=image_size,
        test=TensorDataset(images[test_idx], labels[test_idx]) if len(test_idx) else None,
    )
