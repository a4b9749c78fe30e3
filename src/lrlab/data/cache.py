"""Images decoded once into memory instead of every epoch (`data.cache_images`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from lrlab.data.transforms import load_rgb, normalize_transforms, val_geometry
from lrlab.errors import ConfigError

log = logging.getLogger(__name__)

Samples = list[tuple[str, int]]


class CachedImages(Dataset):
    """Images decoded once and kept in memory; `transform` runs on every access."""

    def __init__(self, images: list, targets: list[int], transform: Callable) -> None:
        self.images, self.targets, self.transform = images, targets, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), self.targets[index]


def cached_datasets(
    train_samples: Samples,
    val_samples: Samples,
    train_tf: Callable,
    mean: list[float],
    std: list[float],
    size: int,
    augment: bool,
    short_side: int | None,
    max_gb: float,
) -> tuple[CachedImages, CachedImages] | None:
    """Decode every image once, or None (decode per epoch) when they exceed `max_gb`.

    Images stay PIL images, so the transforms are the very ones of the uncached path and
    give the same tensors (torchvision's tensor kernels would be faster with one thread but
    are many times slower with two threads in the main process, where the model runs).
    Validation images (and train images without augmentation) are stored after their
    deterministic resize + center crop. Augmented train images are stored as decoded, only
    shrunk when their shorter side exceeds `short_side` (default 2 x size, so every random
    crop is still a downscale); below that the cached and the uncached pipelines give
    identical tensors for the same seed.
    """
    from PIL import Image
    from torchvision.transforms import v2

    short_side = short_side or 2 * size
    if short_side < size:
        raise ConfigError(f"data.cache_short_side must be >= data.image_size, got {short_side}")
    if max_gb <= 0:
        raise ConfigError(f"data.cache_max_gb must be > 0, got {max_gb}")

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
    n_pixels += sum(stored_pixels(p) if augment else size * size for p, _ in train_samples)
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

    def decode(samples: Samples, fixed: bool) -> list:
        images = []
        for path, _ in samples:
            img = load_rgb(path)
            if fixed:
                img = geometry(img)
            elif min(img.size) > short_side:
                img = v2.functional.resize(img, short_side, antialias=True)
            images.append(img)
        return images

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
