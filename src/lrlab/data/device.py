"""The device-resident data path (`data.on_device`): a data set that fits in memory as one
tensor on the training device, its training augmentation as a few batched tensor ops with
per-sample random parameters, and normalisation on the device (airbench's and hlb-CIFAR10's
shape). No per-sample Python runs in the training loop.

`DeviceLoader` is what the loop iterates instead of a DataLoader: batches of (images, labels)
already on the device, shuffled and augmented from one seeded CPU `generator`. Every random
draw of an epoch (the order, then each sample's parameters) happens when the epoch's iterator
starts, so the generator's state at the epoch's start (what a checkpoint keeps) replays the
epoch exactly, mid-epoch resumes included.

The augmentation is read off the data set's own transforms.v2 pipeline (`batched_ops`):
deterministic geometry (Resize, CenterCrop) is applied once when the images are stored, random
ops map onto `BatchAugment`, ToImage/ToDtype/Normalize onto the normalisation. A transform with
no batched equivalent keeps the data on the per-sample loader path. How the two paths'
augmentations differ: docs/scaling.md ("Data on the device").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lrlab.data.batched import BatchAugment, NotBatchable, Pipeline, batched_ops
from lrlab.data.cache import CachedImages, read_array, write_array
from lrlab.errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]
log = logging.getLogger(__name__)


@dataclass
class DeviceImages:
    """A whole split as tensors: images (N, C, H, W) uint8 0-255 or float, and labels."""

    images: torch.Tensor
    labels: torch.Tensor
    pipeline: Pipeline

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        return self.images.numel() * self.images.element_size() + self.labels.numel() * 8

    def to(self, device: torch.device) -> DeviceImages:
        return DeviceImages(self.images.to(device), self.labels.to(device), self.pipeline)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch of the stored values -> what the per-sample transforms give: the
        same operations as ToDtype(scale=True) and Normalize, so unaugmented batches are
        equal bit for bit (e.g. validation)."""
        p = self.pipeline
        if self.images.dtype == torch.uint8 and p.scales:
            x = x.mul_(1.0 / 255)
        if p.mean is None:
            return x
        c = x.shape[1]
        mean = torch.as_tensor(p.mean, device=x.device).expand(c).view(-1, 1, 1)
        std = torch.as_tensor(p.std, device=x.device).expand(c).view(-1, 1, 1)
        return x.sub_(mean).div_(std)


def _stack(images: list, labels: list[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PIL images / HWC arrays of one size -> (N, C, H, W) uint8, and labels."""
    arrays = [np.asarray(im) for im in images]
    if len({a.shape for a in arrays}) > 1:
        raise NotBatchable("its images have different sizes")
    stacked = torch.from_numpy(np.stack(arrays))
    stacked = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
    return stacked.contiguous(), torch.as_tensor(labels, dtype=torch.long)


def _square_crops(images: list, size: int) -> list:
    """Variable-size PIL images -> their centre square at `size` (what the device path stores
    for a random crop: the per-sample path crops from the whole image)."""
    from torchvision.transforms import v2

    return [v2.functional.center_crop(v2.functional.resize(im, size), size) for im in images]


def _stacked(dataset: CachedImages, size: int | None) -> torch.Tensor:
    """A CachedImages' images as one uint8 (N, C, H, W) tensor: their centre squares at `size`
    (stored for a random crop: variable sizes allowed), else as they are. Read from the data's
    disk cache where it keeps one (`data.cache_on_disk`), else made and kept there."""
    file = dataset.disk_file("stack" if size is None else f"square{size}")
    stored = read_array(file, (len(dataset), -1, size or -1, size or -1))
    if stored is not None:
        return torch.from_numpy(stored)
    pil = dataset.images if size is None else _square_crops(dataset.images, size)
    images, _ = _stack(pil, dataset.targets)
    write_array(file, images.numpy())
    return images


def device_images(dataset: Any) -> DeviceImages:
    """One split (a data set lrlab builds) as `DeviceImages` on the CPU, or NotBatchable."""
    from torch.utils.data import Subset, TensorDataset

    indices = None
    if isinstance(dataset, Subset):
        dataset, indices = dataset.dataset, list(dataset.indices)
    if isinstance(dataset, TensorDataset):  # digits: float tensors, already normalised
        if len(dataset.tensors) != 2:
            raise NotBatchable("a TensorDataset that is not (images, labels)")
        images, labels = dataset.tensors
        pipeline = Pipeline()
    elif isinstance(dataset, CachedImages):  # (not hasattr "images": that would read them)
        pipeline = batched_ops(dataset.transform)
        if indices is None:
            images = _stacked(dataset, pipeline.size)
            labels = torch.as_tensor(dataset.targets, dtype=torch.long)
        else:
            pil = [dataset.images[i] for i in indices]
            if pipeline.size is not None:
                pil = _square_crops(pil, pipeline.size)
            images, labels = _stack(pil, [dataset.targets[i] for i in indices])
            indices = None
    elif hasattr(dataset, "data") and hasattr(dataset, "targets"):  # torchvision CIFAR, MNIST
        pipeline = batched_ops(getattr(dataset, "transform", None))
        images, labels = _stack(list(np.asarray(dataset.data)), list(dataset.targets))
    else:
        raise NotBatchable(f"{type(dataset).__name__} is not a data set it can read whole")
    if indices is not None:
        images, labels = images[indices], labels[indices]
    for t in pipeline.geometry:  # Resize / CenterCrop: once, on the whole uint8 stack
        images = t(images)
    if pipeline.size is not None and images.shape[-1] != pipeline.size:
        images = _resized(images, pipeline.size)
    return DeviceImages(images, labels, pipeline)


def _resized(images: torch.Tensor, size: int) -> torch.Tensor:
    from torchvision.transforms import v2

    return v2.functional.center_crop(v2.functional.resize(images, size, antialias=True), size)


@contextmanager
def single_thread(device: torch.device | None) -> Iterator[None]:
    """On the CPU, a batch's few small ops on one thread: with two or more OpenMP threads their
    synchronisation costs more than the ops (20x on a loaded 2-core machine:
    benchmarks/README.md, "Data on the device"). The model's steps keep every thread."""
    if device is None or device.type != "cpu":  # None: nothing to build (a bare gather)
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class DeviceLoader:
    """Batches of one `DeviceImages` split, already on its device; a loader to the loop (len,
    re-iterable, `generator`, `batch_size` the Resizing callback may change per epoch)."""

    def __init__(
        self,
        data: DeviceImages,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None = None,
        augment: bool = True,
        source: Any = None,
    ) -> None:
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.source = source  # the per-sample data set the images came from
        self.generator = generator
        self.augment = data.pipeline.augment if augment else BatchAugment()
        if shuffle and generator is None:
            raise ValueError("a shuffled DeviceLoader needs a generator")

    @property
    def batch_sampler(self) -> DeviceLoader:  # what staged resizing sets `batch_size` on
        return self

    @property
    def dataset(self) -> Any:
        """The per-sample data set the images came from (its transforms, files, ...)."""
        return self.source if self.source is not None else self.data

    def __len__(self) -> int:
        return -(-len(self.data.labels) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n, device, batch_size = len(self.data.labels), self.data.images.device, self.batch_size
        # A DataLoader draws its workers' base seed (from its generator, else torch's global
        # RNG) before the order: drawn here too, so that the order and the global RNG (dropout)
        # follow the per-sample path's for the same seed; unaugmented runs are equal bit for bit.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.arange(n)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator)
        draws = self.augment.draw(n, self.generator) if self.augment.active else None
        order = order.to(device, non_blocking=True)
        if draws is not None:
            draws = draws.to(device, non_blocking=True)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            with single_thread(device if draws is not None or self.data.pipeline.mean else None):
                x = self.data.images[idx].to(torch.float32)  # a new tensor: normalised in place
                if draws is not None:
                    x = self.augment(x, draws[start : start + batch_size])
                batch = self.data.normalise(x), self.data.labels[idx]
            yield batch
        if self.shuffle:  # RandomSampler draws one more (empty) permutation at its end
            torch.randperm(n, generator=self.generator)


# auto: the device path up to this share of the device's memory (CPU: of data.cache_max_gb's
# default, 2 GB, as the decoded image cache itself)
GPU_MEMORY_SHARE = 0.25
CPU_MAX_BYTES = 2e9


def device_loaders(
    train: Any,
    val: Any,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | None,
    on_device: str,
    distributed: bool = False,
) -> tuple[DeviceLoader, DeviceLoader] | None:
    """The device path's (train, val) loaders for `data.on_device` (auto | true), or None
    (the per-sample path): where the data does not batch, does not fit, or the run is data
    parallel. `true` turns each of these into a one-line ConfigError."""
    device = device or torch.device("cpu")

    def refuse(why: str) -> None:
        if on_device == "true":
            raise ConfigError(f"data.on_device=true: {why}; use data.on_device=auto or false")
        log.info("data.on_device=auto: the per-sample loader path, as %s", why)

    if distributed:
        return refuse("data parallel runs (torchrun) shard the per-sample loaders only")
    try:
        train_images, val_images = device_images(train), device_images(val)
    except NotBatchable as e:
        return refuse(f"the data cannot go on the device ({e})")
    need = train_images.nbytes + val_images.nbytes
    limit = CPU_MAX_BYTES
    if device.type == "cuda":
        limit = GPU_MEMORY_SHARE * torch.cuda.get_device_properties(device).total_memory
    if need > limit and on_device == "auto":
        return refuse(f"its {need / 1e9:.2f} GB exceed {limit / 1e9:.2f} GB on {device}")
    train_images, val_images = train_images.to(device), val_images.to(device)
    log.info(
        "data.on_device: %d + %d images (%.0f MB) on %s, augmented there in batches",
        len(train_images.labels),
        len(val_images.labels),
        need / 1e6,
        device,
    )
    return (
        DeviceLoader(train_images, batch_size, True, generator, source=train),
        DeviceLoader(val_images, batch_size, False, augment=False, source=val),
    )
