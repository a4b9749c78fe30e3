"""Any folder of class subfolders (`root/<class>/<image>`), e.g. the flowers.

A stratified, seeded validation split (or a separate `val_root`), train augmentation, and
per-channel mean/std of the train split (cached on disk) or ImageNet's. With `cache_images`
every image is decoded once into memory instead of every epoch (and, with `cache_on_disk`,
read back from disk by the next run); the random augmentation still runs per sample, with
the same transforms, random draws and resulting tensors.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import MISSING
from torch.utils.data import Subset

from lrlab.data.augment import effective_augment
from lrlab.data.cache import cached_datasets
from lrlab.data.folder_links import check_links
from lrlab.data.loaders import DataConfig, DataSets
from lrlab.data.split import check_split_settings, remembered_split
from lrlab.data.stats import channel_stats
from lrlab.data.transforms import IMAGENET_MEAN, IMAGENET_STD, check_images, image_transforms
from lrlab.errors import ConfigError

log = logging.getLogger(__name__)

NORMALIZE_OPTIONS = ("dataset", "imagenet")
# What torchvision's ImageFolder loads; other files are skipped (and counted in the log).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class ImageFolderConfig(DataConfig):
    _target_: str = MISSING
    name: str = MISSING
    batch_size: int = MISSING
    root: str | None = MISSING  # required: data.root=/path/to/images
    val_root: str | None = MISSING  # a separate validation folder with the same classes
    test_root: str | None = MISSING  # a held-out test folder with the same classes (eval.py)
    test_fraction: float = MISSING  # else: a stratified test split of root, held out first
    image_size: int = MISSING  # train: random resized crop to this; val: resize + center crop
    val_fraction: float = MISSING  # used when val_root is null
    split_seed: int = MISSING
    augment: bool = MISSING  # false: train without the augment group
    augmentation: Any = MISSING  # the `augment` group (pick it with augment=...)
    normalize: str = MISSING  # dataset: the train split's mean/std | imagenet: ImageNet's
    cache_images: bool = MISSING  # decode once into memory (4 bytes/pixel) instead of every epoch
    cache_max_gb: float = MISSING  # above this: a warning, and decoding every epoch instead
    cache_short_side: int | None = MISSING  # stored train images' short side
    cache_on_disk: bool = MISSING  # keep the decoded images in <stats_dir>/image_cache/
    stats_dir: str = MISSING  # where the channel statistics (and images) are cached
    follow_links: bool = MISSING  # read links out of data.root (a link inside it is refused)
    about: str | None = MISSING  # what the data set is and where to get it (named when missing)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_split_settings(self.val_fraction, self.image_size, self.split_seed)
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.normalize not in NORMALIZE_OPTIONS:
            raise ConfigError(
                f"data.normalize={self.normalize!r} is not one of {NORMALIZE_OPTIONS}"
            )


def image_folder(
    root: str | None,
    val_root: str | None,
    image_size: int,
    val_fraction: float,
    split_seed: int,
    augment: bool,
    normalize: str,
    cache_images: bool,
    cache_max_gb: float,
    cache_short_side: int | None,
    stats_dir: str,
    cache_on_disk: bool = False,
    follow_links: bool = False,
    augmentation: Any = None,
    test_root: str | None = None,
    test_fraction: float = 0.0,
    about: str | None = None,
) -> DataSets:
    from torchvision.datasets import ImageFolder

    root_dir = check_image_root(root, "data.root", about)
    val_dir = check_image_root(val_root, "data.val_root") if val_root else None
    test_dir = check_image_root(test_root, "data.test_root") if test_root else None
    folders = ((root_dir, "data.root"), (val_dir, "data.val_root"), (test_dir, "data.test_root"))
    for folder_dir, key in folders:
        if folder_dir is not None:  # each real image once: no loops, no links read twice
            check_links(folder_dir, key, follow_links)

    def folder(path: Path, transform: Callable | None) -> ImageFolder:
        try:
            return ImageFolder(str(path), transform=transform)
        except FileNotFoundError as e:  # torchvision's message names the empty class folders
            raise ConfigError(f"{path}: {e}") from None

    scan = folder(root_dir, None)
    check_scan(root_dir, scan.classes)
    kept = list(range(len(scan)))  # root's images that train or validate (not the test split)
    test_idx: list[int] = []
    if test_fraction and test_dir is None:
        kept, test_idx = split_of(scan, kept, test_fraction, split_seed, root_dir, stats_dir)
    if val_dir is None:
        train_idx, val_idx = split_of(scan, kept, val_fraction, split_seed, root_dir, stats_dir)
        val_samples = [scan.samples[i] for i in val_idx]
    else:
        val_scan = folder(val_dir, None)
        check_scan(val_dir, val_scan.classes)
        if val_scan.classes != scan.classes:
            raise ConfigError(
                f"data.val_root classes {val_scan.classes} differ from data.root's {scan.classes}"
            )
        train_idx, val_idx = kept, None
        val_samples = list(val_scan.samples)
    train_samples = [scan.samples[i] for i in train_idx]

    train_files = [p for p, _ in train_samples]
    all_files = [p for p, _ in scan.samples] + ([p for p, _ in val_samples] if val_dir else [])
    test_scan = folder(test_dir, None) if test_dir else None
    if test_scan is not None:
        check_scan(test_dir, test_scan.classes)
        if test_scan.classes != scan.classes:
            raise ConfigError(
                f"data.test_root classes {test_scan.classes} differ from data.root's {scan.classes}"
            )
        all_files += [p for p, _ in test_scan.samples]
    if normalize == "imagenet":  # what ImageNet-pretrained models saw
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        check_images(all_files)
    else:
        mean, std = channel_stats(train_files, all_files, image_size, Path(stats_dir))
    train_tf, val_tf = image_transforms(
        image_size, mean, std, effective_augment(augmentation, augment)
    )
    augmented = train_tf is not val_tf  # what the image cache stores depends on it
    if test_scan is not None:
        test_scan.transform = val_tf  # scanned once above
        test_set = test_scan
    else:
        test_set = Subset(folder(root_dir, val_tf), test_idx) if test_idx else None

    def sets(train, val) -> DataSets:
        return DataSets(
            train, val, scan.classes, 3, image_size, test=test_set, eval_transform=val_tf
        )

    if cache_images:
        cached = cached_datasets(
            train_samples,
            val_samples,
            train_tf,
            mean,
            std,
            image_size,
            augmented,
            cache_short_side,
            cache_max_gb,
            disk_dir=Path(stats_dir) if cache_on_disk else None,
        )
        if cached is not None:
            return sets(*cached)
    train_set = Subset(folder(root_dir, train_tf), train_idx)
    if val_dir is None:
        return sets(train_set, Subset(folder(root_dir, val_tf), val_idx))
    return sets(train_set, folder(val_dir, val_tf))


def split_of(
    scan, indices: list[int], fraction: float, seed: int, root: Path, stats_dir: str
) -> tuple[list[int], list[int]]:
    """A stratified, remembered split of `scan`'s `indices` (sorted indices into `scan`)."""
    labels = np.array([scan.targets[i] for i in indices])
    if np.bincount(labels).min() < 2:
        raise ConfigError(f"{root}: every class folder needs at least 2 images for a split")
    files = [str(Path(scan.samples[i][0]).relative_to(root)) for i in indices]
    kept, held = remembered_split(files, labels, fraction, seed, Path(stats_dir))
    return [indices[i] for i in kept], [indices[i] for i in held]


def check_image_root(path: str | None, key: str, about: str | None = None) -> Path:
    where = f": {about}" if about else ""
    if path in (None, "", "???"):
        raise ConfigError(
            f"{key} is not set: point it at a folder with one subfolder per class{where}"
        )
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{key}={path!r} does not exist or is not a directory{where}")
    if not any(p.is_dir() for p in root.iterdir()):
        raise ConfigError(f"{key}={path!r} has no class subfolders")
    return root


def check_scan(root: Path, classes: list[str]) -> None:
    """Refuse a single class (it trains to 100% without a word); say which files are skipped."""
    if len(classes) < 2:
        raise ConfigError(
            f"{root} has a single class folder ({classes[0]!r}); a classifier needs at least 2"
        )
    skipped = Counter(
        p.suffix.lower() or "(no extension)"
        for p in root.glob("*/**/*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IMG_EXTENSIONS
    )
    if skipped:
        log.warning(
            "%s: skipped %d files the image loader does not read (%s); loaded: %s",
            root,
            sum(skipped.values()),
            ", ".join(f"{ext}: {n}" for ext, n in skipped.most_common()),
            " ".join(IMG_EXTENSIONS),
        )
