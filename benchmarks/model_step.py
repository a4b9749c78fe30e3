"""Train-step time of the built-in models on a flowers-sized batch (32 x 3 x 64 x 64, channels
last, one thread): experiment=flowers_fast's SimpleCNN against conf/model/resnet9.yaml.

    .venv/bin/python benchmarks/model_step.py --repeats 5

Forward + backward + an AdamW step on random data (the model's arithmetic only, no data
loading), the models round-robin (A B A B ...) so that other load hits both alike; prints the
medians and the ratio to the first model, with the load average, as a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from lrlab.models import build_model  # noqa: E402

MODELS = {
    "simple_cnn (flowers_fast)": {
        "_target_": "lrlab.models.simple_cnn.SimpleCNN",
        **OmegaConf.to_container(OmegaConf.load(ROOT / "conf/experiment/flowers_fast.yaml").model),
        "init": "kaiming",
    },
    "resnet9 (conf/model/resnet9.yaml)": OmegaConf.to_container(
        OmegaConf.load(ROOT / "conf/model/resnet9.yaml")
    ),
}


def step_time(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int) -> float:
    x = torch.randn(32, 3, 64, 64).to(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (32,))
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    built = {}
    for name, cfg in MODELS.items():
        model = build_model(OmegaConf.create(cfg), num_classes=5, in_channels=3, image_size=64)
        model = model.to(memory_format=torch.channels_last).train()
        built[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3))
        step_time(*built[name], steps=2)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in built}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, (model, opt) in built.items():
            times[name].append(step_time(model, opt, args.steps))
        load.append(os.getloadavg()[0])
    first = statistics.median(next(iter(times.values())))
    print(f"load average {min(load):.1f} to {max(load):.1f}, torch {torch.__version__}, 1 thread\n")
    print("| model | parameters | step (ms, median) | ratio |")
    print("| --- | --- | --- | --- |")
    for name, ts in times.items():
        n = sum(p.numel() for p in built[name][0].parameters())
        med = statistics.median(ts)
        print(f"| {name} | {n / 1e6:.2f} M | {med * 1e3:.0f} | {med / first:.2f}x |")


if __name__ == "__main__":
    main()
