"""Per-channel mean/std of an image folder's train split, computed once and cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from lrlab.data.transforms import load_rgb, val_geometry
from lrlab.utils import write_cache_file

log = logging.getLogger(__name__)


def channel_stats(
    train_files: list[str], all_files: list[str], size: int, cache_dir: Path
) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of the train split, cached by file list, sizes and mtimes.

    The first (uncached) pass opens every image, so an unreadable file is reported by name
    before training starts rather than mid-epoch.
    """
    key = hashlib.sha256()
    for f in all_files:  # os.* rather than pathlib: the same key, 0.1 s less for 4,300 files
        st = os.stat(f)
        # surrogateescape: file names that are not UTF-8 hash as their bytes
        key.update(os.fsencode(f"{os.path.realpath(f)}|{st.st_size}|{st.st_mtime_ns}\n"))
    key.update(f"size={size}\n".encode())
    for f in sorted(train_files):  # the split itself: another split_seed, other statistics
        key.update(os.fsencode(f"{f}\n"))
    cache = cache_dir / "stats_cache" / f"{key.hexdigest()[:20]}.json"
    if cache.is_file():
        stats = json.loads(cache.read_text())
        return stats["mean"], stats["std"]

    from torchvision.transforms import v2

    to_tensor = v2.Compose(
        [*val_geometry(size), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
    )
    train_set = set(train_files)
    total, total_sq, count = (
        torch.zeros(3, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
        0,
    )
    for f in all_files:
        rgb = load_rgb(f)
        if f in train_set:
            x = to_tensor(rgb).double().flatten(1)
            total += x.sum(1)
            total_sq += (x * x).sum(1)
            count += x.shape[1]
    mean = total / count
    std = (total_sq / count - mean * mean).sqrt()
    stats = {"mean": mean.tolist(), "std": std.tolist()}
    write_cache_file(cache, lambda f: f.write(json.dumps(stats).encode()), "channel stats")
    return stats["mean"], stats["std"]
