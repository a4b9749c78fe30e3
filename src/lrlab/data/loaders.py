"""`build_data`: a data set's `_target_` called with its own config, wrapped in loaders."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import MISSING, DictConfig, OmegaConf
from torch.utils.data import DataLoader, Dataset

from lrlab.errors import ConfigError
from lrlab.utils import instantiate


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
    train_loader: DataLoader
    val_loader: DataLoader
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

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")


LOADER_KEYS = ("name", "batch_size")


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
    data_cfg: DictConfig, seed: int, num_workers: int = 0, pin_memory: bool = False
) -> DataBundle:
    """Train and validation loaders for `data_cfg`; `seed` fixes the shuffling order."""
    batch_size = data_cfg.batch_size
    sets = load_datasets(data_cfg)
    common: dict[str, Any] = dict(
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=pin_memory,
        # Not persistent: every epoch's iterator then draws its worker seeds from the loader's
        # generator, so a resumed run and the LR finder's restore reproduce them exactly.
        persistent_workers=False,
        worker_init_fn=ignore_stop_signals if num_workers else None,
    )
    # A seeded generator makes the shuffling order (and worker seeds) part of `seed`.
    generator = torch.Generator().manual_seed(seed)
    return DataBundle(
        train_loader=DataLoader(sets.train, shuffle=True, generator=generator, **common),
        val_loader=DataLoader(sets.val, shuffle=False, **common),
        num_classes=len(sets.class_names),
        in_channels=sets.in_channels,
        image_size=sets.image_size,
        class_names=sets.class_names,
    )
