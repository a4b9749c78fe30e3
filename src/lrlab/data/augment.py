"""`augment=`: the training augmentation as small, composable torchvision transforms.v2 pieces.

Two kinds, kept apart on purpose:
- `augment.ops`: per-sample transforms (name -> `_target_` node, applied in order to the decoded
  image before it becomes a normalised tensor), then `augment.random_erasing` on the tensor.
  A batched, device-resident data path can map them by `_target_` (RandomResizedCrop,
  RandomCrop with padding, RandomHorizontalFlip) onto batched tensor ops.
- `augment.batch`: a batch transform (`v2.MixUp`, `v2.CutMix`) called on `(images, labels)`
  after the batch is on the device; it returns soft labels, which the train step's loss and
  accuracy take as they come (`lrlab.engine.step`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from lrlab.errors import ConfigError


@dataclass
class AugmentConfig:
    """The `augment:` group (conf/augment/*.yaml)."""

    name: str = MISSING  # shown in summary.json
    # name -> a transforms.v2 `_target_` node, applied in this order; `null` drops one
    ops: dict[str, Any] = MISSING
    random_erasing: float = MISSING  # probability of v2.RandomErasing on the normalised tensor
    # a batch transform taking `num_classes` (partial v2.MixUp / v2.CutMix), or null / {}
    batch: Any = MISSING

    def __post_init__(self) -> None:
        if not 0 <= self.random_erasing <= 1:
            raise ConfigError(
                f"augment.random_erasing must be in [0, 1], got {self.random_erasing}"
            )
        for name, op in self.ops.items():
            if op is not None and not (isinstance(op, Mapping) and op.get("_target_")):
                raise ConfigError(f"augment.ops.{name} needs a _target_ (a transforms.v2 class)")
        if self.batch and not (isinstance(self.batch, Mapping) and self.batch.get("_target_")):
            raise ConfigError(
                "augment.batch needs a _target_ (e.g. torchvision.transforms.v2.MixUp)"
            )


NO_AUGMENT: dict[str, Any] = {"name": "none", "ops": {}, "random_erasing": 0.0, "batch": None}


def effective_augment(augmentation: Any, enabled: bool = True) -> dict[str, Any]:
    """What a data set trains with: the `augment` group (its `data.augmentation`), or nothing
    when `data.augment=false`."""
    return dict(augmentation) if enabled and augmentation else dict(NO_AUGMENT)


def sample_ops(augment: Mapping[str, Any]) -> list[Callable]:
    """The per-sample pieces, in order (already-instantiated ones are kept as they are)."""
    from lrlab.utils import instantiate

    ops = (augment.get("ops") or {}).values()
    return [instantiate(op) if isinstance(op, Mapping) else op for op in ops if op is not None]


def random_erasing(augment: Mapping[str, Any]) -> list[Callable]:
    """v2.RandomErasing on the normalised tensor (erased pixels become 0: the mean)."""
    p = float(augment.get("random_erasing") or 0.0)
    if p <= 0:
        return []  # before the import: torchvision costs ~0.3 s of a digits run's start-up
    from torchvision.transforms import v2

    return [v2.RandomErasing(p=p)]


def batch_transform(augment: Mapping[str, Any], num_classes: int) -> Callable | None:
    """`augment.batch` (a partial: Hydra instantiates data configs recursively, and the number of
    classes is only known from the data) called with `num_classes`, or None."""
    from lrlab.utils import instantiate

    node = augment.get("batch")
    if not node:
        return None
    made = instantiate(node) if isinstance(node, Mapping) else node
    if not callable(made):
        raise ConfigError("augment.batch must be a partial (_partial_: true) taking num_classes")
    return made(num_classes=num_classes)


def one_of(transforms: list[Callable], num_classes: int) -> Callable:
    """One of the batch transforms at random per batch (v2.RandomChoice), each given
    `num_classes` (conf/augment/batch/mixup_cutmix.yaml)."""
    from torchvision.transforms import v2

    return v2.RandomChoice([make(num_classes=num_classes) for make in transforms])
