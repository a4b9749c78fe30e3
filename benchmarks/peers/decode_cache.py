"""How long lrlab's decoded image cache takes to fill: one thread vs the thread pool.

    python benchmarks/peers/decode_cache.py --repeats 5 --root ../shared/data/flowers

Calls `lrlab.data.cached_datasets` on the flowers split as `build_data` does (header pass
for the memory limit, then decoding every image), alternating CACHE_DECODE_THREADS=1 and the
default, and prints the medians (wall and CPU seconds of this process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "data" / "flowers")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import numpy as np
    from omegaconf import OmegaConf
    from torchvision.datasets import ImageFolder

    from lrlab import data

    scan = ImageFolder(str(args.root))
    train_idx, val_idx = data.stratified_split(np.array(scan.targets), 0.2, 0)
    cfg = OmegaConf.create(
        {"image_size": 64, "augment": True, "cache_max_gb": 2.0, "cache_short_side": None}
    )
    train_tf, _ = data.image_transforms(64, [0.5] * 3, [0.25] * 3, augment=True)
    samples = [scan.samples[i] for i in train_idx], [scan.samples[i] for i in val_idx]
    default = data.CACHE_DECODE_THREADS
    times: dict[int, list[tuple[float, float]]] = {1: [], default: []}
    loads = []
    for _ in range(args.repeats):
        for threads in times:
            data.CACHE_DECODE_THREADS = threads
            loads.append(os.getloadavg()[0])
            w, c = time.perf_counter(), time.process_time()
            data.cached_datasets(cfg, *samples, train_tf, [0.5] * 3, [0.25] * 3)
            times[threads].append((time.perf_counter() - w, time.process_time() - c))
    print(
        f"{len(scan)} images; {args.repeats} repeats; 1-min load {min(loads):.1f}-{max(loads):.1f}"
    )
    for threads, ts in times.items():
        wall = statistics.median(t[0] for t in ts)
        cpu = statistics.median(t[1] for t in ts)
        print(f"CACHE_DECODE_THREADS={threads}: {wall:.2f} s wall, {cpu:.2f} s cpu")


if __name__ == "__main__":
    main()
