"""The seeded, stratified train/validation split every built-in data set uses."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from lrlab.errors import ConfigError
from lrlab.utils import write_cache_file

log = logging.getLogger(__name__)


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int, key: str = "data.val_fraction"
) -> tuple[list, list]:
    """Sorted train and validation indices with the class proportions of `labels` in both.
    `val_fraction` is a fraction of the images, or (an int) their number, as scikit-learn's
    `test_size`; `key` is the config key an error names."""
    from sklearn.model_selection import train_test_split

    check_split_sizes(labels, val_fraction, key)
    indices = np.arange(len(labels))
    train_idx, val_idx = train_test_split(
        indices, test_size=val_fraction, stratify=labels, random_state=seed
    )
    return sorted(train_idx.tolist()), sorted(val_idx.tolist())


def remembered_split(
    files: list[str],
    labels: np.ndarray,
    val_fraction: float,
    seed: int,
    cache_dir: Path | str | None,
    key_name: str = "data.val_fraction",
) -> tuple[list, list]:
    """`stratified_split`, stored once per file list, labels, fraction, seed and scikit-learn
    version (in `cache_dir/split_cache/`): a later run skips importing scikit-learn (about 2 s
    of start-up). Without `cache_dir`, just `stratified_split`."""
    from importlib.metadata import version

    if cache_dir is None:
        return stratified_split(labels, val_fraction, seed, key_name)
    cache_dir = Path(cache_dir)

    key = hashlib.sha256(f"{val_fraction!r}|{seed}|{version('scikit-learn')}\n".encode())
    for f, y in zip(files, labels.tolist(), strict=True):
        key.update(os.fsencode(f"{f}|{y}\n"))  # a name that is not UTF-8: its bytes
    cache = cache_dir / "split_cache" / f"{key.hexdigest()[:20]}.json"
    if cache.is_file():
        split = json.loads(cache.read_text())
        return split["train"], split["val"]
    train_idx, val_idx = stratified_split(labels, val_fraction, seed, key_name)
    split = json.dumps({"train": train_idx, "val": val_idx}).encode()
    write_cache_file(cache, lambda f: f.write(split), "the split")
    return train_idx, val_idx


def check_split_sizes(
    labels: np.ndarray, val_fraction: float, key: str = "data.val_fraction"
) -> None:
    """A stratified split needs every class in both parts: at least as many images on each
    side as there are classes (scikit-learn's rounding: validation ceil, train the rest)."""
    n, classes = len(labels), len(np.unique(labels))
    is_count = isinstance(val_fraction, int | np.integer)
    n_val = int(val_fraction) if is_count else int(np.ceil(val_fraction * n))
    if min(n_val, n - n_val) < classes:
        valid = (
            f"{classes} to {n - classes}"
            if is_count
            else f"{classes / n:.3g} to {(n - classes) / n:.3g}"
        )
        raise ConfigError(
            f"{key}={val_fraction} splits {n} images into {n - n_val} train and "
            f"{n_val} held out, fewer than the {classes} classes each part needs; use a "
            f"{key.rsplit('.', 1)[-1]} from {valid}"
        )


MAX_IMAGE_SIZE = 8192  # one 3 x 8192 x 8192 float image is 0.8 GB already


def check_split_settings(val_fraction: float, image_size: int, split_seed: int = 0) -> None:
    """The checks the split data sets' configs share (run when the config is validated)."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    if not 0 <= split_seed < 2**32:  # what scikit-learn's random_state takes
        raise ConfigError(f"data.split_seed must be in [0, 2**32), got {split_seed}")
    check_image_size(image_size)


def check_image_size(image_size: int) -> None:
    if not 1 <= image_size <= MAX_IMAGE_SIZE:
        raise ConfigError(
            f"data.image_size must be from 1 to {MAX_IMAGE_SIZE} px, got {image_size} "
            f"(one 3 x {image_size} x {image_size} float image: "
            f"{3 * 4 * image_size**2 / 1e9:.3g} GB)"
        )
