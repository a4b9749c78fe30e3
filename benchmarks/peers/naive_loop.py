"""The training script a user writes instead of lrlab: flowers, SimpleCNN, Adam + OneCycleLR.

    python benchmarks/peers/naive_loop.py --root ../shared/data/flowers --epochs 3
    python benchmarks/peers/naive_loop.py --root ../shared/data/flowers --epochs 3 --tricks

Plain PyTorch as the tutorials write it: torchvision ImageFolder decoding every JPEG every
epoch, RandomResizedCrop(64, scale 0.7-1) + flip + normalize, batch 32, no workers (lrlab's
default; workers are slower on 2 cores), Adam with torch's OneCycleLR (max_lr 1e-3), a
validation pass every epoch. Same split (lrlab's 80/20 stratified, split seed 0), model,
seed and channel statistics as `python train.py data=flowers`.

`--tricks` adds exactly what lrlab does by default on top: the model in channels_last, and
every image decoded once into memory (validation images after their resize + center crop,
train images as decoded; the same transforms run on every access, as lrlab's cache does).

Prints JSON lines prefixed "PEERS " (common.emit): `first_step` (after the first optimizer
step), one `epoch` per epoch (epoch_time_s = train + validation, like lrlab's metrics.jsonl)
and `done`.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import FLOWERS_MEAN, FLOWERS_STD, SEED, SimpleCNN, stratified_split
from PIL import Image
from records import emit
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2


class DecodedImages(Dataset):
    """Images decoded once (PIL, RGB); `transform` runs on every access."""

    def __init__(self, samples: list[tuple[str, int]], fixed=None, transform=None) -> None:
        def load(path: str) -> Image.Image:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
            return fixed(rgb) if fixed else rgb

        self.images = [load(p) for p, _ in samples]
        self.targets = [t for _, t in samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.targets[i]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--tricks", action="store_true", help="channels_last + decoded image cache")
    args = p.parse_args()

    torch.manual_seed(SEED)
    size = 64
    to_tensor = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    normalize = v2.Normalize(FLOWERS_MEAN, FLOWERS_STD)
    val_geometry = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    train_tf = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            *to_tensor,
            normalize,
        ]
    )
    val_tf = v2.Compose([*val_geometry, *to_tensor, normalize])

    scan = ImageFolder(args.root)
    train_idx, val_idx = stratified_split(scan.targets)
    if args.tricks:
        train_set = DecodedImages([scan.samples[i] for i in train_idx], transform=train_tf)
        val_set = DecodedImages(
            [scan.samples[i] for i in val_idx],
            fixed=v2.Compose(val_geometry),
            transform=v2.Compose([*to_tensor, normalize]),
        )
    else:
        train_set = Subset(ImageFolder(args.root, transform=train_tf), train_idx)
        val_set = Subset(ImageFolder(args.root, transform=val_tf), val_idx)
    generator = torch.Generator().manual_seed(SEED)
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True, generator=generator)
    val_loader = DataLoader(val_set, batch_size=32)

    model = SimpleCNN(num_classes=len(scan.classes))
    if args.tricks:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-3, epochs=args.epochs, steps_per_epoch=len(train_loader)
    )
    loss_fn = nn.CrossEntropyLoss()

    steps = 0
    for epoch in range(args.epochs):
        start = time.perf_counter()
        model.train()
        train_loss, train_correct = 0.0, 0
        for x, y in train_loader:
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
            if steps == 1:
                emit("first_step")
            train_loss += loss.item() * len(y)
            train_correct += (logits.argmax(1) == y).sum().item()

        model.eval()
        val_loss, val_correct = 0.0, 0
        with torch.no_grad():
            for x, y in val_loader:
                logits = model(x)
                val_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
                val_correct += (logits.argmax(1) == y).sum().item()
        emit(
            "epoch",
            epoch=epoch + 1,
            epoch_time_s=time.perf_counter() - start,
            train_loss=train_loss / len(train_set),
            train_acc=train_correct / len(train_set),
            val_loss=val_loss / len(val_set),
            val_acc=val_correct / len(val_set),
        )
    emit("done")


if __name__ == "__main__":
    main()
