"""Where one training epoch's time goes: cProfile over the real data pipeline and TrainStep.

    .venv/bin/python benchmarks/profile_epoch.py data=flowers data.root=../shared/data/flowers
    .venv/bin/python benchmarks/profile_epoch.py data=flowers data.root=../shared/data/flowers \\
        data.cache_images=false --threads 1

Arguments are train.py's config overrides. Prints a markdown table of time per stage (JPEG
decoding, transforms, collation, forward, backward, optimizer step, validation) from the
profile's cumulative times, and the top functions by own time; `--out FILE` keeps the
profile for snakeviz/pstats.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import torch  # noqa: E402

# (stage, file suffix, function name): cumulative times of these calls in the profile.
STAGES = [
    ("decode JPEG (ImageFolder's pil_loader)", "datasets/folder.py", "pil_loader"),
    ("transforms (v2.Compose)", "transforms/v2/_container.py", "forward"),
    ("collate (default_collate)", "_utils/collate.py", "default_collate"),
    ("train step (TrainStep: forward + backward + step)", "lrlab/engine/step.py", "__call__"),
    ("  forward (SimpleCNN.forward, train and validation)", "models/simple_cnn.py", "forward"),
    ("  backward", "torch/_tensor.py", "backward"),
    ("  optimizer step", "torch/optim/optimizer.py", "wrapper"),
    ("validation (evaluate: data + forward)", "lrlab/engine/step.py", "evaluate"),
]


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    # pstats' own table: {(file, line, function): (calls, primitive calls, tottime, cumtime, ...)}
    return sum(
        v[3]
        for (file, _, func), v in stats.stats.items()  # type: ignore[attr-defined]
        if func == name and file.endswith(suffix)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="save the cProfile stats here")
    args = parser.parse_args()

    from lrlab.engine.step import TrainStep, evaluate
    from lrlab.models import build_model
    from lrlab.utils import seed_everything
    from tests.helpers import build_data_from, build_optimizer_from, compose_cfg

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(args.overrides, Path(tmp))
        cfg.paths.data_dir = str(ROOT / "data")  # reuse the channel stats cache
        seed_everything(cfg.seed)
        data = build_data_from(cfg)
    model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step = TrainStep(model, build_optimizer_from(cfg, model), torch.device("cpu"))

    profiler = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    model.train()
    for batch in data.train_loader:
        step([batch])
    evaluate(model, data.val_loader, step)
    profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu

    stats = pstats.Stats(profiler)
    print(f"one epoch (train + validation): {wall:.2f} s wall, {cpu:.2f} s CPU, ")
    print(f"torch threads {torch.get_num_threads()}, overrides {' '.join(args.overrides)}\n")
    print("| stage | s (profiled wall) | % of epoch |\n|---|---|---|")
    for label, suffix, name in STAGES:
        t = cumulative(stats, suffix, name)
        print(f"| {label} | {t:.2f} | {100 * t / wall:.0f}% |")
    print("\n(decoding, transforms and collation include the validation pass's share)\n")
    stats.sort_stats("tottime").print_stats(12)
    if args.out:
        stats.dump_stats(args.out)


if __name__ == "__main__":
    main()
