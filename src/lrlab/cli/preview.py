"""`lrlab-schedule` (also scripts/plot_schedule.py): see a schedule before you run it.

    lrlab-schedule scheduler=onecycle optimizer=sgd trainer.epochs=20
    lrlab-schedule scheduler=clr --out docs/img/schedules

Takes train.py's overrides, composes the same config, builds the data loaders (only for the
real number of optimizer steps per epoch), model, optimizer and schedule with the training
code, steps the schedule through the whole run and writes `<out>/<name>.png` and
`<out>/<name>.csv` (`step,epoch,lr,lr_1,...,momentum`: the values each optimizer step uses;
`lr` is group 0, the head, as in metrics.jsonl; then any `scheduler.params` keys and, with a
`resizing:` plan, `image_size` and `batch_size`). The optimizer switch shows as the second
optimizer's schedule from its epoch on. A plateau schedule is fed a validation loss
that never improves, so it shows its earliest possible reductions.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[3] / "conf"


def compose_config(overrides: list[str], conf_dir: Path = CONF_DIR) -> DictConfig:
    from hydra import compose, initialize_config_dir

    from lrlab.tasks.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def plot(
    rows: list[list], header: list[str], group_names: list[str], title: str, path: Path
) -> None:
    """lr of every distinct group curve; below it every other column that changes (momentum,
    scheduled hyper-parameters, image and batch size); a constant one goes in the title."""
    from matplotlib.figure import Figure

    col = {name: i for i, name in enumerate(header)}
    epochs = [r[1] for r in rows]
    panels = []
    for name in header[col["momentum"] :]:
        values = {r[col[name]] for r in rows}
        if len(values) > 1:
            panels.append(name)
        elif values != {None}:
            shown = "momentum/beta1" if name == "momentum" else name
            title += f", {shown} {values.pop():g}"
    fig = Figure(figsize=(7, 3.2 + 1.8 * len(panels)), layout="tight")
    axes = fig.subplots(1 + len(panels), 1, sharex=True, squeeze=False)[:, 0]
    curves: dict[tuple, list[str]] = {}  # one line per distinct lr curve, named by its groups
    for i, name in enumerate(group_names):
        curves.setdefault(tuple(r[2 + i] for r in rows), []).append(name)
    for lrs, names in curves.items():
        axes[0].plot(
            epochs, lrs, label=", ".join(dict.fromkeys(n.removesuffix(".no_decay") for n in names))
        )
    axes[0].set_ylabel("learning rate")
    axes[0].ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    if len(curves) > 1:
        axes[0].legend(loc="best", fontsize="small")
    for ax, name in zip(axes[1:], panels, strict=True):
        steps = name in ("image_size", "batch_size")  # whole values: a staircase
        ax.plot(
            epochs,
            [r[col[name]] for r in rows],
            color="tab:orange",
            drawstyle="steps-post" if steps else "default",
        )
        ax.set_ylabel("momentum / beta1" if name == "momentum" else name.replace("_", " "))
    axes[-1].set_xlabel("epoch")
    axes[0].set_title(title, fontsize="medium")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def describe_optimizers(cfg: DictConfig) -> str:
    """`Adam(lr=0.001)`; the lr scaling's factor and an optimizer switch when there are."""
    from lrlab.optim.optimizer import scaled_peak_lr

    def one(node: DictConfig) -> str:
        name = node._target_.rsplit(".", 1)[-1]
        _, scaling = scaled_peak_lr(node, cfg.data.batch_size, cfg.trainer.accumulate_grad_batches)
        if scaling is None:
            return f"{name}(lr={node.lr:g})"
        return f"{name}(lr={node.lr:g} x {scaling['factor']:.3g} {scaling['rule']} scaling)"

    text = one(cfg.optimizer)
    switch = cfg.get("optimizer_switch")
    if switch:
        text += f" -> {one(switch.optimizer)} from epoch {switch.epoch}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lrlab-schedule",
        description="Plot the lr/momentum schedule of a training config (train.py overrides).",
    )
    parser.add_argument("overrides", nargs="*", help="train.py overrides, e.g. scheduler=clr")
    parser.add_argument("--out", default="outputs/schedules", help="output folder")
    parser.add_argument("--name", help="file name stem (default: the scheduler name)")
    args = parser.parse_intermixed_args(argv)

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lrlab.cli.errors import one_line
    from lrlab.errors import ConfigError
    from lrlab.tasks.preview import schedule_trace

    try:
        cfg = compose_config(args.overrides)
        rows, spe, header, group_names = schedule_trace(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # the scheduler option picked (its file's name), else the schedule's class
    picked = [o.split("=", 1)[1] for o in args.overrides if o.startswith("scheduler=")]
    stem = args.name or (picked or [str(cfg.scheduler._target_).rsplit(".", 1)[-1].lower()])[-1]
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    title = f"{' '.join(args.overrides) or 'defaults'}\n{describe_optimizers(cfg)}, "
    title += f"{cfg.trainer.epochs} epochs x {spe} steps"
    plot(rows, header, group_names, title, out / f"{stem}.png")
    print(out / f"{stem}.png")
    print(out / f"{stem}.csv")
    return 0
