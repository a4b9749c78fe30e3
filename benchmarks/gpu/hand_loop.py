"""The training loop a user writes for a GPU instead of lrlab (benchmarks/peers/naive_loop.py
with what a GPU needs): ImageFolder decoded by DataLoader workers (pinned memory, persistent),
RandomResizedCrop(scale 0.7-1) + flip + normalise per sample, non-blocking copies, autocast,
channels_last, a timm model, Adam + OneCycleLR. Prints one JSON line per epoch:
`{"epoch": n, "train_s": seconds, "images": n}` (training only, validation excluded).

    python benchmarks/gpu/hand_loop.py --root ../shared/data/flowers --model resnet18 \\
        --size 64 --batch-size 256 --precision bf16-mixed --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import time

import timm
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

DTYPES = {"32": None, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--precision", default="bf16-mixed", choices=sorted(DTYPES))
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=min(8, (os.cpu_count() or 2) - 1))
    args = p.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("high")
    tf = v2.Compose(
        [
            v2.RandomResizedCrop(args.size, scale=(0.7, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    data = ImageFolder(args.root, transform=tf)
    loader = DataLoader(
        data,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )
    model = timm.create_model(args.model, num_classes=len(data.classes)).to(device)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-3, epochs=args.epochs, steps_per_epoch=len(loader)
    )
    dtype = DTYPES[args.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_s = time.perf_counter() - start
        print(json.dumps({"epoch": epoch + 1, "train_s": train_s, "images": len(data)}), flush=True)


if __name__ == "__main__":
    main()
