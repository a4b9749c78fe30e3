"""Progressive resizing and multi-scale training: the training batches' image size per epoch
(with an optional batch size per stage) or per batch, validation at one fixed size.

The data set and its cache are untouched: images are decoded (once, with `data.cache_images`)
and augmented at the data set's own size (`data.image_size`), and every batch is resized to
its planned size (`torch.nn.functional.interpolate`, antialiased) before the model sees it.
Multi-scale sizes are drawn per batch from a generator seeded by (seed, epoch) alone, so a run
is reproducible and a resumed one (mid-epoch too) sees the same sizes.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from omegaconf import MISSING

from lrlab.data.device import DeviceLoader
from lrlab.errors import ConfigError

MODES = ("bilinear", "bicubic", "area", "nearest")
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class SizeStage:
    """One stage of a progressive-resizing plan."""

    size: int = MISSING  # training image size (pixels, square)
    epochs: int | None = None  # epochs at this size; the last stage runs to the end: leave it out
    batch_size: int | None = None  # null: data.batch_size


@dataclass
class ResizingConfig:
    """`resizing:` (conf/resizing/). Empty lists: every batch at the data set's own size."""

    stages: list[SizeStage] = MISSING  # progressive resizing, per epoch
    sizes: list[int] = MISSING  # multi-scale: each batch at one of these
    val_size: int | None = MISSING  # null: the last stage's size (multi-scale: the data's own)
    mode: str = MISSING  # interpolation: bilinear | bicubic | area | nearest

    def __post_init__(self) -> None:
        if self.stages and self.sizes:
            raise ConfigError(
                "resizing.stages and resizing.sizes: choose one (a plan or multi-scale)"
            )
        for i, s in enumerate(self.stages):
            where = f"resizing.stages[{i}]"
            if not _positive_int(s.size):
                raise ConfigError(f"{where}.size={s.size!r}: must be an integer >= 1")
            if s.batch_size is not None and not _positive_int(s.batch_size):
                raise ConfigError(f"{where}.batch_size={s.batch_size!r}: must be an integer >= 1")
            last = i == len(self.stages) - 1
            if last and s.epochs is not None:
                raise ConfigError(
                    f"{where}.epochs={s.epochs}: the last stage runs to the end of the run; "
                    "leave its epochs out"
                )
            if not last and not _positive_int(s.epochs):
                raise ConfigError(f"{where}.epochs={s.epochs!r}: must be an integer >= 1")
        for i, size in enumerate(self.sizes):
            if not _positive_int(size):
                raise ConfigError(f"resizing.sizes[{i}]={size!r}: must be an integer >= 1")
        if self.val_size is not None and not _positive_int(self.val_size):
            raise ConfigError(
                f"resizing.val_size={self.val_size!r}: must be an integer >= 1 or null"
            )
        if self.mode not in MODES:
            raise ConfigError(f"resizing.mode={self.mode!r}: must be {' | '.join(MODES)}")

    @property
    def active(self) -> bool:
        return bool(self.stages or self.sizes or self.val_size)


def _positive_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def check_stages_fit(cfg: ResizingConfig, epochs: int) -> None:
    """Every stage must start before the run ends (`trainer.epochs`)."""
    start = 0
    for i, stage in enumerate(cfg.stages):
        if start >= epochs:
            raise ConfigError(
                f"resizing.stages[{i}] (size {stage.size}) would start after epoch {start}, "
                f"past the {epochs}-epoch run (trainer.epochs)"
            )
        start += stage.epochs or 0


class SizePlan:
    """Which size (and batch size) each training batch has, as a pure function of where it is."""

    def __init__(self, cfg: ResizingConfig, seed: int, native_size: int, batch_size: int) -> None:
        self.cfg, self.seed = cfg, seed
        self.native_size, self.base_batch_size = native_size, batch_size
        self._drawn: dict[int, tuple[random.Random, list[int]]] = {}
        last = cfg.stages[-1].size if cfg.stages else native_size
        self.val_size = cfg.val_size or last

    def stage(self, epoch: int) -> SizeStage | None:
        start = 0
        for stage in self.cfg.stages:
            if stage.epochs is None or epoch < start + stage.epochs:
                return stage
            start += stage.epochs
        return None

    def batch_size(self, epoch: int) -> int:
        stage = self.stage(epoch)
        return (stage.batch_size or self.base_batch_size) if stage else self.base_batch_size

    @property
    def changes_batch_size(self) -> bool:
        return any(s.batch_size not in (None, self.base_batch_size) for s in self.cfg.stages)

    def train_size(self, epoch: int, batch_index: int) -> int:
        if self.cfg.sizes:
            return self._multiscale(epoch, batch_index)
        stage = self.stage(epoch)
        return stage.size if stage else self.native_size

    def _multiscale(self, epoch: int, batch_index: int) -> int:
        # Its own generator per epoch, seeded by (seed, epoch) alone: torch's RNG and the data
        # order are untouched, and any batch's size can be recomputed after a resume.
        if epoch not in self._drawn:
            self._drawn = {epoch: (random.Random(f"lrlab-multiscale:{self.seed}:{epoch}"), [])}
        rng, drawn = self._drawn[epoch]
        while len(drawn) <= batch_index:
            drawn.append(rng.choice(self.cfg.sizes))
        return drawn[batch_index]


def resize(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """A batch of images (N, C, H, W) at size x size; unchanged when it already is."""
    if x.shape[-2:] == (size, size):
        return x
    smooth = mode in ("bilinear", "bicubic")
    return torch.nn.functional.interpolate(
        x, size=(size, size), mode=mode, antialias=smooth, align_corners=False if smooth else None
    )


class ResizedBatches:
    """The training batches of the current `epoch` (set by the Resizing callback), each at its
    planned size; re-iterable every epoch, with the wrapped batches' length."""

    def __init__(self, batches: Iterable[Batch], plan: SizePlan) -> None:
        self.batches, self.plan = batches, plan
        self.epoch, self.last_size = 0, None

    def __iter__(self) -> Iterator[Batch]:
        for i, (x, y) in enumerate(self.batches):
            self.last_size = self.plan.train_size(self.epoch, i)
            yield resize(x, self.last_size, self.plan.cfg.mode), y

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]


class FixedSize:
    """Validation batches at one size."""

    def __init__(self, batches: Iterable[Batch], size: int, mode: str) -> None:
        self.batches, self.size, self.mode = batches, size, mode

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self.batches:
            yield resize(x, self.size, self.mode), y

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]


def staged_loader(
    loader: torch.utils.data.DataLoader, batch_size: int
) -> torch.utils.data.DataLoader:
    """`loader` (shuffled by its seeded generator) with a batch size the Resizing callback can
    change every epoch (`loader.batch_sampler.batch_size`). Same sampler, same generator: at an
    unchanged batch size it yields the very batches of `loader`."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    if isinstance(loader, DeviceLoader):  # its batch_size can change every epoch as it is
        loader.batch_size = batch_size
        return loader
    sampler = RandomSampler(loader.dataset, generator=loader.generator)
    return DataLoader(
        loader.dataset,
        batch_sampler=BatchSampler(sampler, batch_size, drop_last=False),
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        collate_fn=loader.collate_fn,
        worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
        persistent_workers=False,
    )


def refuse_fixed_input_size(model: torch.nn.Module) -> None:
    """timm models with a fixed input size (ViTs' position embeddings, ...) cannot take batches of
    another size: refuse before training."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("fixed_input_size"):
        name = cfg.get("architecture") or type(model).__name__
        raise ConfigError(
            f"resizing: {name} takes a fixed input size (timm's fixed_input_size), so it cannot "
            "train at other sizes; use a model that takes any size (CNNs, e.g. resnet18) or "
            "resizing=none"
        )
