"""What one epoch iterates over: the loaders, a prefix of them (`limit_*_batches`), or the same
few batches every epoch (`overfit_batches`)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from lrlab.engine.step import Batch


class Limited:
    """The first `n` batches of a loader, re-iterable every epoch, with a length (read every
    epoch: a resizing plan may change the loader's batch size, and so its length)."""

    def __init__(self, loader: Iterable[Batch], n: int) -> None:
        self.loader, self.limit = loader, n

    @property
    def n(self) -> int:
        return min(self.limit, len(self.loader))  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        return itertools.islice(self.loader, self.n)

    def __len__(self) -> int:
        return self.n


def epoch_batches(
    train_loader: Iterable[Batch],
    val_loader: Iterable[Batch],
    limit_train_batches: int | None = None,
    limit_val_batches: int | None = None,
    overfit_batches: int = 0,
) -> tuple[Iterable[Batch], Iterable[Batch]]:
    if overfit_batches:
        fixed = list(itertools.islice(train_loader, overfit_batches))
        return fixed, fixed
    train: Iterable[Batch] = train_loader
    val: Iterable[Batch] = val_loader
    if limit_train_batches:
        train = Limited(train_loader, limit_train_batches)
    if limit_val_batches:
        val = Limited(val_loader, limit_val_batches)
    return train, val
