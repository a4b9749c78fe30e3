"""What the checkpoint checksum costs next to the save itself (docs/reliability.md, Checksums).

A resnet18 (timm, random weights) with Adam state: torch.save of the payload, the checksum of
it (`lrlab.engine.checkpoint.checksum`, SHA-256 over every tensor's bytes), interleaved
(save, checksum, save, checksum, ...), medians of `--repeats`.

    .venv/bin/python benchmarks/checkpoint_checksum.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import timm
import torch

from lrlab.engine.checkpoint import checksum


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = timm.create_model("resnet18", pretrained=False)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    optimizer.step()
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1}
    saves, sums = [], []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "last.ckpt")
        for _ in range(args.repeats):
            start = time.perf_counter()
            torch.save(payload, path)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            checksum(payload)
            sums.append(time.perf_counter() - start)
        size = os.path.getsize(path) / 1e6
    save, summed = statistics.median(saves), statistics.median(sums)
    print(f"load average {os.getloadavg()[0]:.1f}; checkpoint {size:.0f} MB")
    print(f"torch.save {save:.3f} s, checksum {summed:.3f} s: checksum/save {summed / save:.2f}")


if __name__ == "__main__":
    main()
