"""The seeded, stratified train/validation split every built-in data set uses."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from lrlab.errors import ConfigError

log = logging.getLogger(__name__)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[list, list]:
    """Sorted train and validation indices with the class proportions of `labels` in both."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    train_idx, val_idx = train_test_split(
        indices, test_size=val_fraction, stratify=labels, random_state=seed
    )
    return sorted(train_idx.tolist()), sorted(val_idx.tolist())


def remembered_split(
    files: list[str], labels: np.ndarray, val_fraction: float, seed: int, cache_dir: Path
) -> tuple[list, list]:
    """`stratified_split`, stored once per file list, labels, fraction, seed and scikit-learn
    version (in `cache_dir/split_cache/`): a later run skips importing scikit-learn (about 1 s
    of start-up)."""
    from importlib.metadata import version

    key = hashlib.sha256(f"{val_fraction!r}|{seed}|{version('scikit-learn')}\n".encode())
    for f, y in zip(files, labels.tolist(), strict=True):
        key.update(f"{f}|{y}\n".encode())
    cache = cache_dir / "split_cache" / f"{key.hexdigest()[:20]}.json"
    if cache.is_file():
        split = json.loads(cache.read_text())
        return split["train"], split["val"]
    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    try:  # atomically: parallel sweep jobs may read it meanwhile
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"train": train_idx, "val": val_idx}))
        tmp.replace(cache)
    except OSError as e:  # a read-only data dir only costs the split next time
        log.warning("could not cache the split at %s: %s", cache, e)
    return train_idx, val_idx


def check_split_settings(val_fraction: float, image_size: int) -> None:
    """The checks the split data sets' configs share (run when the config is validated)."""
    if not 0 < val_fraction < 1:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    check_image_size(image_size)


def check_image_size(image_size: int) -> None:
    if image_size < 1:
        raise ConfigError(f"data.image_size must be >= 1, got {image_size}")
