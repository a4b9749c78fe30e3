"""The seeded, stratified train/validation split every built-in data set uses."""

from __future__ import annotations

import numpy as np

from lrlab.errors import ConfigError


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[list, list]:
    """Sorted train and validation indices with the class proportions of `labels` in both."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train_idx, val_idx = train_test_split(
        indices, test_size=val_fraction, stratify=labels, random_state=seed
    )
    return sorted(train_idx.tolist()), sorted(val_idx.tolist())


def check_split_settings(val_fraction: float, image_size: int) -> None:
    """The checks the split data sets' configs share (run when the config is validated)."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    check_image_size(image_size)


def check_image_size(image_size: int) -> None:
    if image_size < 1:
        raise ConfigError(f"data.image_size must be >= 1, got {image_size}")
