"""Batched equivalents of per-sample transforms.v2 augmentation (the device path's,
`lrlab.data.device`): `BatchAugment` draws each sample's parameters and applies a whole batch's
flips, random crops and random resized crops as one affine resampling; `batched_ops` reads a
transforms.v2 pipeline as these ops. `BATCHED` maps a transform's class name onto them: register
a transform with a batched equivalent there (`@batched_as("MyTransform")`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F


class NotBatchable(Exception):
    """Why a data set cannot go on the device (the per-sample loader path then serves it)."""


@dataclass
class BatchAugment:
    """Random training augmentation, batched: each sample gets its own parameters."""

    flip: bool = False  # horizontal flip with probability 1/2 (RandomHorizontalFlip)
    pad: int = 0  # RandomCrop(padding=pad): shift by -pad..pad pixels, zero fill
    crop_scale: tuple[float, float] | None = None  # RandomResizedCrop's area range
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # and its aspect-ratio range

    @property
    def active(self) -> bool:
        return self.flip or self.pad > 0 or self.crop_scale is not None

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 5) uniform draws per sample: flip, crop area, crop log-ratio, crop x, crop y.
        Drawn whether or not an op uses them, so that the generator advances the same way."""
        return torch.rand(n, 5, generator=generator)

    def __call__(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """`x` (B, C, H, W) float with `u` = its rows of `draw`; returns the augmented batch."""
        if self.pad == 0 and self.crop_scale is None:
            return (
                torch.where((u[:, 0] < 0.5)[:, None, None, None], x.flip(3), x) if self.flip else x
            )
        return F.grid_sample(x, self.grid(x.shape, u), mode="bilinear", align_corners=False)

    def grid(self, shape: torch.Size, u: torch.Tensor) -> torch.Tensor:
        """One affine sampling grid per sample: crop (size and place), shift, flip."""
        b, _, h, w = shape
        one = torch.ones(b, device=u.device)
        sx, sy, cx, cy = one, one, one * 0, one * 0
        if self.crop_scale is not None:  # the crop as fractions of the (square) image's side
            lo, hi = self.crop_scale
            area = lo + (hi - lo) * u[:, 1]
            lr0, lr1 = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
            ratio = torch.exp(lr0 + (lr1 - lr0) * u[:, 2])
            sx = torch.sqrt(area * ratio).clamp(max=1.0)
            sy = torch.sqrt(area / ratio).clamp(max=1.0)
            cx, cy = (2 * u[:, 3] - 1) * (1 - sx), (2 * u[:, 4] - 1) * (1 - sy)
        if self.pad:  # whole-pixel shifts, from the same uniforms as the crop's place
            shift = 2 * self.pad + 1
            cx = cx + 2 * (torch.floor(u[:, 3] * shift) - self.pad) / w
            cy = cy + 2 * (torch.floor(u[:, 4] * shift) - self.pad) / h
        if self.flip:
            sx = torch.where(u[:, 0] < 0.5, -sx, sx)
        zero = torch.zeros_like(sx)
        theta = torch.stack(
            [torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1
        )  # (B, 2, 3): input coordinates of each output pixel
        return F.affine_grid(theta, [b, shape[1], h, w], align_corners=False)


@dataclass
class Pipeline:
    """A transforms.v2 pipeline read as batched ops (see `batched_ops`)."""

    geometry: list[Callable] = field(default_factory=list)  # deterministic: applied once, stored
    augment: BatchAugment = field(default_factory=BatchAugment)
    size: int | None = None  # the random crop's output size (the stored square's side)
    mean: tuple[float, ...] | None = None  # Normalize's, on the 0-1 scale
    std: tuple[float, ...] | None = None
    scales: bool = False  # ToDtype(scale=True) / ToTensor: uint8 0-255 to 0-1


# transforms.v2 class name -> how it maps onto a Pipeline. The integrator (and anyone adding a
# per-sample transform with a batched equivalent) registers it here with `batched_as`.
BATCHED: dict[str, Callable[[Any, Pipeline], None]] = {}


def batched_as(*names: str) -> Callable:
    def register(fn: Callable[[Any, Pipeline], None]) -> Callable[[Any, Pipeline], None]:
        for name in names:
            BATCHED[name] = fn
        return fn

    return register


def _square(size: Any) -> int:
    sizes = [size] if isinstance(size, int) else list(size)
    if len(set(sizes)) != 1:
        raise NotBatchable(f"a non-square size {tuple(sizes)}")
    return int(sizes[0])


@batched_as("Resize", "CenterCrop")
def _geometry(t: Any, p: Pipeline) -> None:
    if p.augment.active or p.size is not None:
        raise NotBatchable(f"{type(t).__name__} after a random transform")
    p.geometry.append(t)


@batched_as("RandomResizedCrop")
def _random_resized_crop(t: Any, p: Pipeline) -> None:
    p.size = _square(t.size)
    p.augment.crop_scale, p.augment.crop_ratio = tuple(t.scale), tuple(t.ratio)


@batched_as("RandomCrop")
def _random_crop(t: Any, p: Pipeline) -> None:
    padding = t.padding or [0]
    if len(set(padding)) != 1 or t.padding_mode != "constant" or t.fill not in (0, None):
        raise NotBatchable("RandomCrop with uneven, non-zero or non-constant padding")
    if t.pad_if_needed:
        raise NotBatchable("RandomCrop(pad_if_needed=True)")
    p.size, p.augment.pad = _square(t.size), int(padding[0])


@batched_as("RandomHorizontalFlip")
def _flip(t: Any, p: Pipeline) -> None:
    if t.p != 0.5:
        raise NotBatchable(f"RandomHorizontalFlip(p={t.p})")
    p.augment.flip = True


@batched_as("ToImage", "PILToTensor")
def _to_image(t: Any, p: Pipeline) -> None:
    pass


@batched_as("ToDtype", "ToTensor")
def _to_float(t: Any, p: Pipeline) -> None:
    if getattr(t, "dtype", torch.float32) not in (torch.float32, None):
        raise NotBatchable(f"ToDtype({t.dtype})")
    p.scales = getattr(t, "scale", True)


@batched_as("Normalize")
def _normalize(t: Any, p: Pipeline) -> None:
    p.mean, p.std = tuple(t.mean), tuple(t.std)


def batched_ops(transform: Callable | None) -> Pipeline:
    """`transform` (a transforms.v2 / transforms Compose, or None) as a `Pipeline`, or
    NotBatchable naming the first transform with no batched equivalent."""
    pipeline = Pipeline()
    steps = [] if transform is None else getattr(transform, "transforms", [transform])
    for t in steps:
        name = type(t).__name__
        if name == "Compose":
            nested = batched_ops(t)
            steps_left = nested.geometry, nested.augment.active, nested.mean
            if any(steps_left):
                raise NotBatchable("a nested Compose")
            continue
        if name not in BATCHED:
            raise NotBatchable(f"{name} has no batched equivalent")
        BATCHED[name](t, pipeline)
    return pipeline
