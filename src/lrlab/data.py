"""Data sets and loaders: `build_data(cfg)` dispatches on `cfg.data.name`.

- `digits`: scikit-learn's bundled 8x8 handwritten digits (no download), upsampled.
- `flowers` / `imagefolder`: any folder of class subfolders, with a stratified, seeded
  validation split (or a separate `val_root`), train augmentation, and per-channel mean/std
  computed from the train split once and cached. With `data.cache_images` every image is
  decoded once into memory instead of every epoch; the random augmentation still runs per
  sample, with the same transforms, random draws and resulting tensors.
- `cifar10`: torchvision's CIFAR-10 (downloads when online; clear error offline).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from lrlab.errors import ConfigError

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NORMALIZE_OPTIONS = ("dataset", "imagenet")
CACHE_DECODE_THREADS = 8  # at most; fewer on fewer cores
T = TypeVar("T")
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class DataBundle:
    train_loader: DataLoader
    val_loader: DataLoader
    num_classes: int
    in_channels: int
    image_size: int
    class_names: list[str]


def build_data(cfg: DictConfig) -> DataBundle:
    data = cfg.data
    builders: dict[str, Callable[[DictConfig], tuple[Dataset, Dataset, list[str], int]]] = {
        "digits": digits_datasets,
        "flowers": image_folder_datasets,
        "imagefolder": image_folder_datasets,
        "cifar10": cifar10_datasets,
    }
    if data.name not in builders:
        raise ConfigError(f"data.name={data.name!r} is unknown; choose one of {sorted(builders)}")
    if data.batch_size < 1:
        raise ConfigError(f"data.batch_size must be >= 1, got {data.batch_size}")
    if data.get("normalize", "dataset") not in NORMALIZE_OPTIONS:
        raise ConfigError(f"data.normalize={data.normalize!r} is not one of {NORMALIZE_OPTIONS}")
    if not 0 < data.get("val_fraction", 0.2) < 1:
        raise ConfigError(f"data.val_fraction must be in (0, 1), got {data.val_fraction}")
    train_set, val_set, class_names, in_channels = builders[data.name](cfg)

    num_workers = cfg.trainer.num_workers
    pin = str(cfg.trainer.device).startswith("cuda") or (
        cfg.trainer.device == "auto" and torch.cuda.is_available()
    )
    common = dict(
        batch_size=data.batch_size,
        num_workers=num_workers,
        pin_memory=pin,
        # Not persistent: every epoch's iterator then draws its worker seeds from the loader's
        # generator, so a resumed run and the LR finder's restore reproduce them exactly.
        persistent_workers=False,
    )
    # A seeded generator makes the shuffling order (and worker seeds) part of `seed`.
    generator = torch.Generator().manual_seed(cfg.seed)
    return DataBundle(
        train_loader=DataLoader(train_set, shuffle=True, generator=generator, **common),
        val_loader=DataLoader(val_set, shuffle=False, **common),
        num_classes=len(class_names),
        in_channels=in_channels,
        image_size=data.image_size,
        class_names=class_names,
    )


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[list, list]:
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
    version: a later run skips importing scikit-learn (about 1 s of start-up)."""
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


# --- digits -------------------------------------------------------------------------------


def digits_datasets(cfg: DictConfig) -> tuple[Dataset, Dataset, list[str], int]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # N,1,8,8
    images = torch.nn.functional.interpolate(
        images,
        size=(cfg.data.image_size, cfg.data.image_size),
        mode="bilinear",
        align_corners=False,
    )
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, val_idx = stratified_split(digits.target, cfg.data.val_fraction, cfg.data.split_seed)
    train_images = images[train_idx]
    mean, std = train_images.mean(), train_images.std()  # train split only: no val leakage
    images = (images - mean) / std
    return (
        TensorDataset(images[train_idx], labels[train_idx]),
        TensorDataset(images[val_idx], labels[val_idx]),
        [str(d) for d in digits.target_names],
        1,
    )


# --- folders of images -----------------------------------------------------------------------


def image_folder_datasets(cfg: DictConfig) -> tuple[Dataset, Dataset, list[str], int]:
    from torchvision.datasets import ImageFolder

    data = cfg.data
    root = check_image_root(data.root, "data.root")
    val_root = check_image_root(data.val_root, "data.val_root") if data.get("val_root") else None

    def folder(path: Path, transform: Callable | None) -> ImageFolder:
        try:
            return ImageFolder(str(path), transform=transform)
        except FileNotFoundError as e:  # torchvision's message names the empty class folders
            raise ConfigError(f"{path}: {e}") from None

    scan = folder(root, None)
    if val_root is None:
        labels = np.array(scan.targets)
        if np.bincount(labels).min() < 2:
            raise ConfigError(f"{root}: every class folder needs at least 2 images for a split")
        files = [str(Path(p).relative_to(root)) for p, _ in scan.samples]
        train_idx, val_idx = remembered_split(
            files, labels, data.val_fraction, data.split_seed, Path(cfg.paths.data_dir)
        )
        val_scan: ImageFolder | None = None
    else:
        train_idx, val_idx = list(range(len(scan))), None
        val_scan = folder(val_root, None)
        if val_scan.classes != scan.classes:
            raise ConfigError(
                f"data.val_root classes {val_scan.classes} differ from data.root's {scan.classes}"
            )

    train_files = [scan.samples[i][0] for i in train_idx]
    all_files = [p for p, _ in scan.samples + (val_scan.samples if val_scan else [])]
    if data.get("normalize", "dataset") == "imagenet":  # what ImageNet-pretrained models saw
        mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        check_images(all_files)
    else:
        mean, std = channel_stats(train_files, all_files, data.image_size, Path(cfg.paths.data_dir))
    train_tf, val_tf = image_transforms(data.image_size, mean, std, augment=data.augment)

    if data.get("cache_images", False):
        train_samples = [scan.samples[i] for i in train_idx]
        val_samples = (
            [scan.samples[i] for i in val_idx] if val_scan is None else list(val_scan.samples)
        )
        cached = cached_datasets(data, train_samples, val_samples, train_tf, mean, std)
        if cached is not None:
            return *cached, scan.classes, 3

    train_set = Subset(folder(root, train_tf), train_idx)
    val_set = (
        Subset(folder(root, val_tf), val_idx) if val_idx is not None else folder(val_root, val_tf)
    )
    return train_set, val_set, scan.classes, 3


def check_image_root(path: str | None, key: str) -> Path:
    if path in (None, "", "???"):
        raise ConfigError(f"{key} is not set: point it at a folder with one subfolder per class")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{key}={path!r} does not exist or is not a directory")
    if not any(p.is_dir() for p in root.iterdir()):
        raise ConfigError(f"{key}={path!r} has no class subfolders")
    return root


def image_transforms(
    size: int, mean: list[float], std: list[float], augment: bool
) -> tuple[Callable, Callable]:
    from torchvision.transforms import v2

    to_tensor = normalize_transforms(mean, std)
    val = v2.Compose([*val_geometry(size), *to_tensor])
    if not augment:
        return val, val
    train = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            *to_tensor,
        ]
    )
    return train, val


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


def channel_stats(
    train_files: list[str], all_files: list[str], size: int, cache_dir: Path
) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of the train split, cached by file list, sizes and mtimes.

    The first (uncached) pass opens every image, so an unreadable file is reported by name
    before training starts rather than mid-epoch.
    """
    key = hashlib.sha256()
    for f in all_files:
        st = Path(f).stat()
        key.update(f"{Path(f).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    key.update(f"size={size}\n".encode())
    for f in sorted(train_files):  # the split itself: another split_seed, other statistics
        key.update(f"{f}\n".encode())
    cache = cache_dir / "stats_cache" / f"{key.hexdigest()[:20]}.json"
    if cache.is_file():
        stats = json.loads(cache.read_text())
        return stats["mean"], stats["std"]

    from torchvision.transforms import v2

    to_tensor = v2.Compose(
        [*val_geometry(size), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    )
    train_set = set(train_files)
    total, total_sq, count = (
        torch.zeros(3, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
        0,
    )
    for f in all_files:
        rgb = load_rgb(f)
        if f in train_set:
            x = to_tensor(rgb).double().flatten(1)
            total += x.sum(1)
            total_sq += (x * x).sum(1)
            count += x.shape[1]
    mean = total / count
    std = (total_sq / count - mean * mean).sqrt()
    stats = {"mean": mean.tolist(), "std": std.tolist()}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(stats))
    except OSError as e:  # a read-only data dir only costs recomputation next time
        log.warning("could not cache channel stats at %s: %s", cache, e)
    return stats["mean"], stats["std"]


# --- in-memory image cache ---------------------------------------------------------------------


class CachedImages(Dataset):
    """Images decoded once and kept in memory; `transform` runs on every access."""

    def __init__(self, images: list, targets: list[int], transform: Callable) -> None:
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), self.targets[index]


def cached_datasets(
    data: DictConfig,
    train_samples: list[tuple[str, int]],
    val_samples: list[tuple[str, int]],
    train_tf: Callable,
    mean: list[float],
    std: list[float],
) -> tuple[CachedImages, CachedImages] | None:
    """Decode every image once, or None (decode per epoch) when they exceed cache_max_gb.

    Images stay PIL images, so the transforms are the very ones of the uncached path and
    give the same tensors (torchvision's tensor kernels would be faster with one thread but
    are many times slower with two threads in the main process, where the model runs).
    Validation images (and train images without augmentation) are stored after their
    deterministic resize + center crop. Augmented train images are stored as decoded, only
    shrunk when their shorter side exceeds `cache_short_side` (default 2 x image_size, so
    every random crop is still a downscale); below that the cached and the uncached
    pipelines give identical tensors for the same seed.
    """
    from PIL import Image
    from torchvision.transforms import v2

    size = data.image_size
    short_side = data.get("cache_short_side") or 2 * size
    max_gb = data.get("cache_max_gb", 2.0)
    if short_side < size:
        raise ConfigError(f"data.cache_short_side must be >= data.image_size, got {short_side}")
    if max_gb <= 0:
        raise ConfigError(f"data.cache_max_gb must be > 0, got {max_gb}")
    augment = bool(data.augment)

    def stored_pixels(path: str) -> int:
        try:
            with Image.open(path) as img:  # reads the header only
                w, h = img.size
        except Exception as e:
            raise ConfigError(f"unreadable image file {path}: {e}") from None
        scale = min(1.0, short_side / min(w, h))
        return round(w * scale) * round(h * scale)

    # PIL keeps RGB images at 4 bytes per pixel. Check the limit before decoding anything.
    n_pixels = size * size * len(val_samples)
    if augment:
        n_pixels += sum(in_threads(stored_pixels, [p for p, _ in train_samples]))
    else:
        n_pixels += size * size * len(train_samples)
    n_images, n_bytes = len(train_samples) + len(val_samples), 4 * n_pixels
    if n_bytes > max_gb * 1e9:
        log.warning(
            "data.cache_images: %d images need %.2f GB > data.cache_max_gb=%g; "
            "decoding them every epoch instead",
            n_images,
            n_bytes / 1e9,
            max_gb,
        )
        return None

    geometry = v2.Compose(val_geometry(size))

    def decode_one(path: str, fixed: bool):
        img = load_rgb(path)
        if fixed:
            return geometry(img)
        if min(img.size) > short_side:
            return v2.functional.resize(img, short_side, antialias=True)
        return img

    def decode(samples: list[tuple[str, int]], fixed: bool) -> list:
        return in_threads(lambda path: decode_one(path, fixed), [p for p, _ in samples])

    start = time.perf_counter()
    val_tf = v2.Compose(normalize_transforms(mean, std))  # the geometry is done
    train = CachedImages(
        decode(train_samples, fixed=not augment),
        [t for _, t in train_samples],
        train_tf if augment else val_tf,
    )
    val = CachedImages(decode(val_samples, fixed=True), [t for _, t in val_samples], val_tf)
    log.info(
        "data.cache_images: decoded %d images into %.0f MB in %.1fs",
        n_images,
        n_bytes / 1e6,
        time.perf_counter() - start,
    )
    return train, val


def in_threads(fn: Callable[[str], T], items: list[str]) -> list[T]:
    """[fn(x) for x in items] on up to CACHE_DECODE_THREADS threads, in order. Pillow
    releases the GIL while it decodes and resizes, so this scales with the cores."""
    from concurrent.futures import ThreadPoolExecutor

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = min(CACHE_DECODE_THREADS, cores or 1)
    if threads <= 1 or len(items) < 64:  # not worth the threads
        return [fn(x) for x in items]
    # Chunks, not single items: a future per 0.2 ms decode costs more than it saves.
    size = -(-len(items) // (4 * threads))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [y for ys in pool.map(lambda chunk: [fn(x) for x in chunk], chunks) for y in ys]


# --- CIFAR-10 ----------------------------------------------------------------------------------


def cifar10_datasets(cfg: DictConfig) -> tuple[Dataset, Dataset, list[str], int]:
    from torchvision.datasets import CIFAR10

    data = cfg.data
    root = Path(data.root).expanduser()
    # torchvision's published CIFAR-10 train-split statistics.
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    train_tf, val_tf = image_transforms(data.image_size, mean, std, augment=data.augment)
    try:
        train = CIFAR10(str(root), train=True, transform=train_tf, download=data.download)
        test = CIFAR10(str(root), train=False, transform=val_tf, download=data.download)
    except RuntimeError as e:  # "Dataset not found or corrupted" with download=False
        raise ConfigError(
            f"CIFAR-10 not found under data.root={str(root)!r} ({e}); set data.download=true "
            "when online, or put cifar-10-batches-py/ there"
        ) from None
    except OSError as e:  # URLError and friends: offline
        raise ConfigError(
            f"CIFAR-10 is not under data.root={str(root)!r} and downloading it failed ({e}); "
            "copy cifar-10-python.tar.gz or cifar-10-batches-py/ there and run again"
        ) from None
    return train, test, list(train.classes), 3
