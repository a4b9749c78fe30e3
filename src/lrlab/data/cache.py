"""Images decoded once into memory instead of every epoch (`data.cache_images`), and kept on
disk for the next run (`data.cache_on_disk`)."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lrlab.data.transforms import load_rgb, normalize_transforms, val_geometry
from lrlab.errors import ConfigError
from lrlab.utils import write_cache_file

log = logging.getLogger(__name__)

Samples = list[tuple[str, int]]
READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


class CachedImages(Dataset):
    """Images decoded once and kept in memory; `transform` runs on every access.

    `images` may be given as a function that returns them (read from the disk cache when first
    used: the device path may never need them). `disk_stem`: where on disk the images' derived
    arrays are kept (`disk_file`), None without a disk cache."""

    def __init__(
        self,
        images: list | Callable[[], list],
        targets: list[int],
        transform: Callable,
        disk_stem: Path | None = None,
    ) -> None:
        self._images, self.targets, self.transform = images, targets, transform
        self.disk_stem = disk_stem

    def load(self) -> None:
        """Read the images now (before DataLoader workers fork: they then share one copy)."""
        _ = self.images

    @property
    def images(self) -> list:
        if callable(self._images):
            self._images = self._images()
        return self._images

    def __getstate__(self) -> dict:
        """Pickled (spawned DataLoader workers) with the images themselves, not their reader."""
        return {**self.__dict__, "_images": self.images}

    def disk_file(self, kind: str) -> Path | None:
        """Where an array derived from these images (e.g. the device path's stack) is kept."""
        return None if self.disk_stem is None else Path(f"{self.disk_stem}.{kind}.npy")

    def __len__(self) -> int:
        return len(self.targets)

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
    disk_dir: Path | None = None,
) -> tuple[CachedImages, CachedImages] | None:
    """Decode every image once, or None (decode per epoch) when they exceed `max_gb`.
    With `disk_dir`, the decoded pixels are also kept in `disk_dir/image_cache/`, and a later
    run with the same files and settings reads them from there instead of decoding (the same
    images bit for bit; the flowers: about 1 s of start-up).

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

    def decode_all() -> list:
        return decode(train_samples, fixed=not augment) + decode(val_samples, fixed=True)

    start = time.perf_counter()
    n_images, n_train = len(train_samples) + len(val_samples), len(train_samples)
    cache_file = shapes = None
    if disk_dir is not None:
        key = decoded_key(train_samples, val_samples, size, augment, short_side)
        cache_file = Path(disk_dir) / "image_cache" / f"{key}.npz"
        shapes = stored_shapes(cache_file, n_images)
    if shapes is not None:  # the files are unchanged since they were decoded: no header check
        n_pixels = int(shapes[:, 0] @ shapes[:, 1])
    else:  # the limit, before decoding anything
        n_pixels = size * size * len(val_samples)
        n_pixels += sum(stored_pixels(p) if augment else size * size for p, _ in train_samples)
    n_bytes = 4 * n_pixels  # PIL keeps RGB images at 4 bytes per pixel
    if n_bytes > max_gb * 1e9:
        log.warning(
            "data.cache_images: %d images need %.2f GB > data.cache_max_gb=%g; "
            "decoding them every epoch instead",
            n_images,
            n_bytes / 1e9,
            max_gb,
        )
        return None

    if shapes is not None:
        # Read when first used (the device path may take its arrays from disk instead); an
        # unreadable file then means decoding after all.
        load = functools.cache(lambda: read_pixels(cache_file, shapes) or decode_all())
        train_images, val_images = (lambda: load()[:n_train]), (lambda: load()[n_train:])
        how = f"found {n_images} decoded images in {cache_file}"
    else:
        decoded = decode_all()
        train_images, val_images = decoded[:n_train], decoded[n_train:]
        how = f"decoded {n_images} images"
        if cache_file is not None and write_decoded(cache_file, decoded):
            how += f" (kept in {cache_file} for later runs; data.cache_on_disk=false: not)"
    stem = None if cache_file is None else cache_file.with_suffix("")  # <key>.train / .val
    val_tf = v2.Compose(normalize_transforms(mean, std))  # the geometry is done
    train = CachedImages(
        train_images,
        [t for _, t in train_samples],
        train_tf if augment else val_tf,
        disk_stem=None if stem is None else Path(f"{stem}.train"),
    )
    val = CachedImages(
        val_images,
        [t for _, t in val_samples],
        val_tf,
        disk_stem=None if stem is None else Path(f"{stem}.val"),
    )
    log.info(
        "data.cache_images: %s, %.0f MB in memory, in %.1fs",
        how,
        n_bytes / 1e6,
        time.perf_counter() - start,
    )
    return train, val


def decoded_key(
    train_samples: Samples, val_samples: Samples, size: int, augment: bool, short_side: int
) -> str:
    """What the stored pixels depend on: every file (path, size, time), how each split was
    stored, and the decoder's and resizer's versions."""
    from importlib.metadata import version

    key = hashlib.sha256(
        f"size={size}|augment={augment}|short_side={short_side}|"
        f"pillow={version('pillow')}|torchvision={version('torchvision')}\n".encode()
    )
    for part, samples in (("train", train_samples), ("val", val_samples)):
        key.update(f"[{part}]\n".encode())
        for f, _ in samples:
            st = os.stat(f)
            # the path as given (no realpath: a file reached another way is only a miss)
            key.update(os.fsencode(f"{f}|{st.st_size}|{st.st_mtime_ns}\n"))
    return key.hexdigest()[:20]


def stored_shapes(path: Path, n_images: int) -> np.ndarray | None:
    """The (n_images, 3) image shapes `write_decoded` stored at `path`, or None: absent, or
    unreadable or of other images (with a warning): decode again."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            shapes = stored["shapes"]
            n_bytes = stored.zip.getinfo("pixels.npy").file_size  # its header: ~128 bytes more
        if shapes.shape != (n_images, 3) or not 0 <= n_bytes - shapes.prod(axis=1).sum() < 4096:
            raise ValueError(f"it holds {len(shapes)} images, not {n_images}")
    except READ_ERRORS as e:
        log.warning("data.cache_on_disk: ignoring %s (%s); decoding again", path, e)
        return None
    return shapes


def read_pixels(path: Path, shapes: np.ndarray) -> list | None:
    """The PIL images of `path`'s pixels, or None (with a warning) where they cannot be read."""
    from PIL import Image

    try:
        with np.load(path) as stored:
            pixels = stored["pixels"]
        ends = np.cumsum(shapes.prod(axis=1))
        if pixels.size != ends[-1]:
            raise ValueError(f"{pixels.size} bytes of pixels, not {ends[-1]}")
    except READ_ERRORS as e:
        log.warning("data.cache_on_disk: ignoring %s (%s); decoding again", path, e)
        return None
    # frombytes: about 2x faster than fromarray for RGB (PIL stores 4 bytes per pixel anyway)
    return [
        Image.frombytes("RGB", (int(w), int(h)), flat.tobytes())
        for flat, (h, w, _) in zip(np.split(pixels, ends[:-1]), shapes, strict=True)
    ]


def write_decoded(path: Path, images: list) -> bool:
    """RGB images' pixels and shapes at `path` (an uncompressed .npz)."""
    arrays = [np.asarray(img) for img in images]
    pixels = np.concatenate([a.reshape(-1) for a in arrays])
    shapes = np.array([a.shape for a in arrays], dtype=np.int64)
    return write_cache_file(
        path, lambda f: np.savez(f, pixels=pixels, shapes=shapes), "the decoded images"
    )


def read_array(path: Path | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A uint8 array `write_array` kept at `path`, or None: absent, or not of `shape` (-1: any)."""
    if path is None or not path.is_file():
        return None
    try:
        array = np.load(path)
        if array.dtype != np.uint8 or len(array.shape) != len(shape):
            raise ValueError(f"a {array.dtype} array of shape {array.shape}")
        if any(want not in (-1, got) for want, got in zip(shape, array.shape, strict=True)):
            raise ValueError(f"shape {array.shape}, not {shape}")
    except READ_ERRORS as e:
        log.warning("data.cache_on_disk: ignoring %s (%s); making it again", path, e)
        return None
    return array


def write_array(path: Path | None, array: np.ndarray) -> bool:
    return path is not None and write_cache_file(path, lambda f: np.save(f, array), "an array")
