"""scikit-learn's bundled handwritten digits: 1797 real 8x8 grayscale images, no download."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import MISSING
from torch.utils.data import TensorDataset

from lrlab.data.loaders import DataConfig, DataSets
from lrlab.data.split import check_split_settings, stratified_split


@dataclass
class DigitsConfig(DataConfig):
    _target_: str = MISSING
    name: str = MISSING
    batch_size: int = MISSING
    image_size: int = MISSING  # the 8x8 images are upsampled to this
    val_fraction: float = MISSING
    split_seed: int = MISSING  # the split stays fixed across `seed`

    def __post_init__(self) -> None:
        super().__post_init__()
        check_split_settings(self.val_fraction, self.image_size, self.split_seed)


def digits(image_size: int, val_fraction: float, split_seed: int) -> DataSets:
    """Upsampled to `image_size`, stratified split, normalised with the train split's mean/std."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # N,1,8,8
    images = torch.nn.functional.interpolate(
        images, size=(image_size, image_size), mode="bilinear", align_corners=False
    )
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, val_idx = stratified_split(digits.target, val_fraction, split_seed)
    train_images = images[train_idx]
    mean, std = train_images.mean(), train_images.std()  # train split only: no val leakage
    images = (images - mean) / std
    return DataSets(
        train=TensorDataset(images[train_idx], labels[train_idx]),
        val=TensorDataset(images[val_idx], labels[val_idx]),
        class_names=[str(d) for d in digits.target_names],
        in_channels=1,
        image_size=image_size,
    )
