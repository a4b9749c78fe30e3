"""The device-resident data path against the per-sample loaders and the compute floor, on the
default flowers run (SimpleCNN, 64 px, batch 32, random resized crop + flip), in one process,
interleaved A B C ... A B C ... so that other load hits every variant alike.

    .venv/bin/python benchmarks/device_data.py --repeats 3 --max-batches 20

Variants (the same model, optimizer and TrainStep as `python train.py data=flowers`):
  device epoch     data.on_device=auto (the device path): its batches + train steps
  loader epoch     data.on_device=false (the per-sample DataLoader path)
  compute floor    train steps on batches already in memory (no data work at all)
  device data      the device path's batches alone (no model)
  loader data      the per-sample loaders' batches alone
Writes benchmarks/results/device-data.md/.json with the load average before and after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
FLOWERS = ROOT.parent / "shared" / "data" / "flowers"


def build(on_device: str, out: Path):
    from omegaconf import open_dict

    from lrlab.tasks.build import build_components
    from tests.helpers import compose_cfg

    cfg = compose_cfg(["data=flowers", f"data.root={FLOWERS}", f"data.on_device={on_device}"], out)
    with open_dict(cfg):
        cfg.paths.data_dir = str(Path(tempfile.gettempdir()) / "lrlab-bench-data")  # stats cache
    return build_components(cfg)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-batches", type=int, default=50)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    load_before = os.getloadavg()
    import torch

    from lrlab.data.device import device_loaders

    # One decode: the device path's loaders from the very data sets of the per-sample path
    loader = build("false", tmp / "loader")
    train_set, val_set = loader.data.train_loader.dataset, loader.data.val_loader.dataset
    gen = torch.Generator().manual_seed(0)
    device_train, _ = device_loaders(train_set, val_set, 32, gen, torch.device("cpu"), "true")
    print("built", flush=True)
    n = args.max_batches
    fixed = [(x.clone(), y.clone()) for x, y in itertools.islice(loader.data.train_loader, n)]

    def steps(c, batches) -> None:
        c.model.train()
        for batch in batches:
            c.step_fn([batch])
        c.step_fn.device.type == "cuda" and __import__("torch").cuda.synchronize()

    variants = {
        "device epoch": lambda: steps(loader, itertools.islice(device_train, n)),
        "loader epoch": lambda: steps(loader, itertools.islice(loader.data.train_loader, n)),
        "compute floor": lambda: steps(loader, fixed),
        "device data": lambda: list(itertools.islice(device_train, n)),
        "loader data": lambda: list(itertools.islice(loader.data.train_loader, n)),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm-up (allocator, oneDNN kernels)
        fn()
    for _ in range(args.repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
            print(name, f"{times[name][-1]:.3f}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = med["compute floor"]
    lines = [
        "# The device-resident data path vs the per-sample loaders (flowers, CPU)",
        "",
        f"`.venv/bin/python benchmarks/device_data.py --repeats {args.repeats} --max-batches {n}`"
        f" ({n} batches of 32 at 64 px, SimpleCNN, default threads; medians of "
        f"{args.repeats} interleaved repeats). Load average (1, 5, 15 min) before: "
        f"{', '.join(f'{x:.1f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores.",
        "",
        "| variant | seconds | / compute floor | data share of its epoch |",
        "|---|---|---|---|",
    ]
    for name, t in med.items():
        share = ""
        if name.endswith("epoch"):
            data = med[name.replace("epoch", "data")]
            share = f"{data / t:.1%}"
        lines.append(f"| {name} | {t:.3f} | {t / floor:.2f}x | {share} |")
    out = ROOT / "benchmarks" / "results" / "device-data"
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"times": times, "load": load_before}))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
