"""`build_data`: a data set's `_target_` called with its own config, wrapped in loaders."""

from __future__ import annotations

import logging
import random
import signal
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import MISSING, DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, get_worker_info

from lrlab.data.device import device_loaders
from lrlab.errors import ConfigError
from lrlab.utils import instantiate

log = logging.getLogger(__name__)


@dataclass
class DataSets:
    """What a data set function returns."""

    train: Dataset
    val: Dataset
    class_names: list[str]
    in_channels: int
    image_size: int
    # The held-out test split, or None; only eval.py reads it (lrlab.data.evaluation).
    test: Dataset | None = None
    eval_transform: Callable | None = None  # an image file -> the model's input (predict)


@dataclass
class DataBundle:
    train_loader: Any  # a DataLoader, or a lrlab.data.device.DeviceLoader (data.on_device)
    val_loader: Any
    num_classes: int
    in_channels: int
    image_size: int
    class_names: list[str]


@dataclass
class DataConfig:
    """Keys every `data:` config has; the others are the `_target_` function's arguments."""

    _target_: str = MISSING
    name: str = MISSING  # shown in logs and summaries
    batch_size: int = MISSING
    # auto: the whole data set as one tensor on the training device, augmented there in
    # batches, where it fits and its transforms batch (docs/scaling.md) | true: that or an error |
    # false: the per-sample DataLoader path
    on_device: str = MISSING

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if str(self.on_device).lower() not in ON_DEVICE:
            raise ConfigError(f"data.on_device={self.on_device!r} is not one of auto, true, false")


LOADER_KEYS = ("name", "batch_size", "on_device")
ON_DEVICE = ("auto", "true", "false")


def load_datasets(data_cfg: DictConfig) -> DataSets:
    """Call the config's `_target_` with every key but the loader's (name, batch_size)."""
    # Resolved while attached to the whole config: `data.augmentation` refers to other keys.
    resolved = OmegaConf.to_container(data_cfg, resolve=True)
    kwargs = {k: v for k, v in resolved.items() if k not in LOADER_KEYS}
    datasets = instantiate(OmegaConf.create(kwargs), _convert_="all")
    if not isinstance(datasets, DataSets):
        raise ConfigError(
            f"data._target_={data_cfg._target_!r} returned {type(datasets).__name__}, "
            "not lrlab.data.DataSets"
        )
    return datasets


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGTERM, SIGUSR1 and SIGINT to the main process. A scheduler
    (SLURM) or a Ctrl-C signals the whole process group: a worker killed by it would fail the
    step in progress instead of letting the run finish it, checkpoint and stop. The main
    process still ends its workers when it drops their loader iterator."""
    for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def build_data(
    data_cfg: DictConfig,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int = 2,
    device: torch.device | None = None,
    distributed: bool = False,
) -> DataBundle:
    """Train and validation loaders for `data_cfg`; `seed` fixes the shuffling order (and
    the device path's augmentation). `device`: where the device path puts the data."""
    batch_size = data_cfg.batch_size
    sets = load_datasets(data_cfg)
    # A seeded generator makes the shuffling order (and worker seeds) part of `seed`.
    generator = torch.Generator().manual_seed(seed)
    on_device = str(data_cfg.get("on_device", "auto")).lower()
    loaders = None
    if on_device != "false":
        loaders = device_loaders(
            sets.train, sets.val, batch_size, generator, device, on_device, distributed
        )
    if loaders is not None:
        train, val = loaders
    else:
        train, val = per_sample_loaders(
            sets, batch_size, generator, num_workers, pin_memory, prefetch_factor
        )
    return DataBundle(
        train_loader=train,
        val_loader=val,
        num_classes=len(sets.class_names),
        in_channels=sets.in_channels,
        image_size=sets.image_size,
        class_names=sets.class_names,
    )


def per_sample_loaders(
    sets: DataSets,
    batch_size: int,
    generator: torch.Generator,
    num_workers: int,
    pin_memory: bool,
    prefetch_factor: int,
) -> tuple[DataLoader, DataLoader]:
    """DataLoaders: each sample transformed on its own, in `num_workers` processes."""
    for split in (sets.train, sets.val):
        if hasattr(split, "load"):  # images read from the disk cache when first used
            split.load()
    common: dict[str, Any] = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=ignore_stop_signals if num_workers else None,
    )
    if num_workers:
        # Workers that stay between epochs (no start-up per epoch), each sample augmented
        # from its own seed: the order and the augmentation follow `generator` alone, as a
        # resumed run and the LR finder's restore need (`SeededSamples`).
        train = SeededLoader(
            SampleSeeds(sets.train),
            sampler=SeededSamples(RandomSampler(sets.train, generator=generator), generator),
            generator=generator,
            persistent_workers=True,
            prefetch_factor=prefetch_factor,
            **common,
        )
        val = SeededLoader(
            sets.val, persistent_workers=True, prefetch_factor=prefetch_factor, **common
        )
    else:
        train = DataLoader(sets.train, shuffle=True, generator=generator, **common)
        val = DataLoader(sets.val, shuffle=False, **common)
    return train, val


class SeededSamples(Sampler):
    """(index, seed) pairs: `sampler`'s order, and one seed per sample drawn from `generator`
    when the epoch starts. A sample's augmentation then depends on neither the worker that
    loads it nor what that worker loaded before, so persistent workers resume exactly."""

    def __init__(self, sampler: Sampler, generator: torch.Generator) -> None:
        self.sampler, self.generator = sampler, generator

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = int(torch.randint(2**62, (), generator=self.generator))
        return ((i, base + k) for k, i in enumerate(self.sampler))

    def __len__(self) -> int:
        return len(self.sampler)  # type: ignore[arg-type]


class SampleSeeds(Dataset):
    """`dataset` indexed by `SeededSamples`' pairs: a worker seeds its RNGs from the pair
    first (a plain index, e.g. from a resizing plan's sampler, loads as it is)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is not None and get_worker_info() is not None:  # never the main process's RNG
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
        return self.dataset[index]


class SeededLoader(DataLoader):
    """A DataLoader whose `generator` (the one checkpoints keep) only shuffles and seeds
    samples. The workers' base seed, which persistent workers draw once, in their first epoch,
    comes from a generator of its own: neither the shuffling generator nor torch's global RNG
    (dropout) then depends on the epoch a run started or resumed in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.worker_seeds = torch.Generator().manual_seed(0)  # each sample reseeds anyway
        _PERSISTENT.add(self)

    def stop_workers(self) -> None:
        """End the persistent worker processes now; a later epoch would start new ones."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()  # what torch's own __del__ calls (Lightning does too)

    def _get_iterator(self) -> Any:
        generator, self.generator = self.generator, self.worker_seeds
        try:
            return super()._get_iterator()
        finally:
            self.generator = generator


# Loaders with persistent workers, so a finished run can end them (`stop_worker_processes`).
_PERSISTENT: weakref.WeakSet[SeededLoader] = weakref.WeakSet()


def stop_worker_processes() -> None:
    """End every persistent loader's worker processes. They otherwise live as long as their
    loader, which reference cycles keep until a garbage collection: the next job of a
    sequential sweep would train beside them, and the interpreter's exit waits on them."""
    for loader in list(_PERSISTENT):
        loader.stop_workers()


def default_workers(device: torch.device, cores: int) -> int:
    """`trainer.num_workers=null`: none on the CPU (the model needs the cores), else one per
    core but one (the main process feeds the GPU), at most 8."""
    if device.type == "cpu":
        return 0
    return max(0, min(8, cores - 1))
