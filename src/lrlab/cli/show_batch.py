"""`lrlab-show-batch` (also `python -m lrlab.cli.show_batch`): a grid PNG of one training batch
as the model sees it (fastai's `show_batch`): after the `augment=` group's per-sample ops,
random erasing and its batch transform (mixup, cutmix), with each image's (soft) label.

    lrlab-show-batch data=flowers data.root=../shared/data/flowers augment=trivialaugment
    lrlab-show-batch data=cifar10 augment/batch=cutmix --out outputs/batch.png --n 32

Images are normalised tensors; each channel is rescaled to [0, 1] over the batch for display,
so relative intensities, crops, erasing and mixing show as the model gets them.
"""

from __future__ import annotations

import argparse
import math
import sys
import textwrap
from pathlib import Path

import torch

from lrlab.cli.preview import compose_config


def training_batch(overrides: list[str], n: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The first `n` images of the first training batch, augmented, and their labels."""
    from lrlab.data import build_data
    from lrlab.data.augment import batch_transform
    from lrlab.tasks.build import trained_augment
    from lrlab.tasks.config import check_config
    from lrlab.utils import seed_everything

    cfg = compose_config(overrides)
    check_config(cfg)
    seed_everything(cfg.seed)
    data = build_data(cfg.data, seed=cfg.seed)
    x, y = next(iter(data.train_loader))
    mix = batch_transform(trained_augment(cfg), data.num_classes)
    if mix is not None:
        x, y = mix(x, y)
    return x[:n], y[:n], data.class_names


def label_text(y: torch.Tensor, class_names: list[str]) -> str:
    """`rose`, or the soft label's two largest shares: `rose 0.62 / tulip 0.38`."""
    if y.ndim == 0:
        return class_names[int(y)]
    shares, classes = y.topk(min(2, len(y)))
    parts = [f"{class_names[int(c)]} {float(s):.2f}" for s, c in zip(shares, classes, strict=True)]
    return " / ".join(p for p, s in zip(parts, shares, strict=True) if s > 0.005)


def batch_figure(x: torch.Tensor, y: torch.Tensor, class_names: list[str], title: str):
    from matplotlib.figure import Figure

    low = x.amin(dim=(0, 2, 3), keepdim=True)
    high = x.amax(dim=(0, 2, 3), keepdim=True)
    shown = ((x - low) / (high - low).clamp(min=1e-8)).clamp(0, 1)
    cols = math.ceil(math.sqrt(len(x)))
    rows = math.ceil(len(x) / cols)
    fig = Figure(figsize=(2.2 * cols, 2.4 * rows + 0.4), layout="tight")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(x):
            image = shown[i].permute(1, 2, 0).numpy()
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
            ax.set_title(label_text(y[i], class_names), fontsize=8)
    fig.suptitle(textwrap.fill(title, 30 * cols), fontsize=9)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lrlab-show-batch",
        description="Write a grid PNG of one augmented training batch (train.py overrides).",
    )
    parser.add_argument("overrides", nargs="*", help="train.py overrides, e.g. augment=pad_crop")
    parser.add_argument("--out", default="outputs/batch.png", help="the PNG to write")
    parser.add_argument("--n", type=int, default=16, help="images shown (at most a batch)")
    args = parser.parse_intermixed_args(argv)
    if args.n < 1:
        print(f"error: --n must be >= 1, got {args.n}", file=sys.stderr)
        return 2

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lrlab.cli.errors import one_line
    from lrlab.errors import ConfigError

    try:
        x, y, names = training_batch(args.overrides, args.n)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = " ".join(args.overrides) or "defaults"
    batch_figure(x, y, names, f"{title}: {len(x)} training images").savefig(out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
