"""fastai's `Learner.fit_one_cycle` on lrlab's flowers task (needs the `bench` extra: fastai).

    python benchmarks/peers/fastai_loop.py --root ../shared/data/flowers --epochs 3

The same split (lrlab's 80/20 stratified, split seed 0), the same SimpleCNN (common.py), batch
32, 64 px, the same channel statistics. Transforms as close as fastai has them: item-level
RandomResizedCrop(64, min_scale=0.7) (validation: resize to 64, as lrlab's resize + center
crop does for the square flowers photos; `val_xtra=0`) and FlipItem, then fastai's
IntToFloatTensor and Normalize as batch transforms. Everything else is fastai's default, as a
fastai user runs it: its own Adam (wd 0.01, decoupled), fit_one_cycle's schedule (pct_start
0.25, div 25, div_final 1e5, momentum 0.95-0.85-0.95), JPEGs decoded every epoch, the
DataLoader's default workers (min(16, cores)) unless `--workers` says otherwise, the
training loader dropping its last partial batch.

Prints the same JSON lines as naive_loop.py (`first_step`, `epoch`, `done`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import FLOWERS_MEAN, FLOWERS_STD, SEED, SimpleCNN, stratified_split
from fastai.vision.all import (  # what fastai's tutorials import (`*`), and its set-up
    Callback,
    CategoryBlock,
    DataBlock,
    FlipItem,
    ImageBlock,
    IndexSplitter,
    Learner,
    Normalize,
    RandomResizedCrop,
    accuracy,
    parent_label,
    set_seed,
)
from records import emit
from torchvision.datasets import ImageFolder


class Timings(Callback):
    """Emits the first optimizer step and every epoch (train + validation) to the runner."""

    order = 100  # after the Recorder, so its validation metrics are there

    def before_fit(self) -> None:
        self.steps = 0

    def before_epoch(self) -> None:
        self.epoch_start = time.perf_counter()

    def after_step(self) -> None:
        self.steps += 1
        if self.steps == 1:
            emit("first_step")

    def after_epoch(self) -> None:
        train_loss, val_loss, val_acc = self.recorder.log[1:4]
        emit(
            "epoch",
            epoch=self.epoch + 1,
            epoch_time_s=time.perf_counter() - self.epoch_start,
            train_loss=float(train_loss),
            val_loss=float(val_loss),
            val_acc=float(val_acc),
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=None, help="default: fastai's (min(16, cores))")
    args = p.parse_args()

    set_seed(SEED)
    scan = ImageFolder(args.root)  # lrlab's file order, so its split indices apply
    train_idx, val_idx = stratified_split(scan.targets)
    files = [Path(path) for path, _ in scan.samples]
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_items=lambda _: files,
        get_y=parent_label,
        splitter=IndexSplitter(val_idx),
        item_tfms=[RandomResizedCrop(64, min_scale=0.7, val_xtra=0.0), FlipItem(0.5)],
        batch_tfms=[Normalize.from_stats(FLOWERS_MEAN, FLOWERS_STD)],
    )
    dls = block.dataloaders(args.root, bs=32, num_workers=args.workers, device=torch.device("cpu"))
    assert len(dls.train_ds) == len(train_idx) and len(dls.valid_ds) == len(val_idx)
    model = SimpleCNN(num_classes=len(dls.vocab))
    learn = Learner(dls, model, metrics=accuracy, cbs=Timings())
    with learn.no_logging(), learn.no_bar():  # printing is not what we measure
        learn.fit_one_cycle(args.epochs, lr_max=1e-3)
    emit("done")


if __name__ == "__main__":
    main()
