"""`lrlab-schedule` (also scripts/plot_schedule.py): see a schedule before you run it.

    lrlab-schedule scheduler=onecycle optimizer=sgd trainer.epochs=20
    lrlab-schedule scheduler=clr --out docs/img/schedules

Takes train.py's overrides, composes the same config, builds the data loaders (only for the
real number of optimizer steps per epoch), model, optimizer and schedule with the training
code, steps the schedule through the whole run and writes `<out>/<name>.png` and
`<out>/<name>.csv` (`step,epoch,lr,lr_1,...,momentum`: the values each optimizer step uses;
`lr` is group 0, the head, as in metrics.jsonl). A plateau schedule is fed a validation loss
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


def plot(rows: list[list], group_names: list[str], title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    epochs = [r[1] for r in rows]
    momenta = {r[-1] for r in rows}
    has_momentum = len(momenta) > 1  # a constant momentum goes in the title instead
    if len(momenta) == 1 and None not in momenta:
        title += f", momentum/beta1 {momenta.pop():g}"
    fig = Figure(figsize=(7, 5 if has_momentum else 3.2), layout="tight")
    axes = fig.subplots(2 if has_momentum else 1, 1, sharex=True, squeeze=False)[:, 0]
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
    if has_momentum:
        axes[1].plot(epochs, [r[-1] for r in rows], color="tab:orange")
        axes[1].set_ylabel("momentum / beta1")
    axes[-1].set_xlabel("epoch")
    axes[0].set_title(title, fontsize="medium")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


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
    stem = args.name or cfg.scheduler.name
    with open(out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
    optimizer = cfg.optimizer._target_.rsplit(".", 1)[-1]
    title = (
        f"{' '.join(args.overrides) or 'defaults'}\n"
        f"{optimizer}(lr={cfg.optimizer.lr:g}), {cfg.trainer.epochs} epochs x {spe} steps"
    )
    plot(rows, group_names, title, out / f"{stem}.png")
    print(out / f"{stem}.png")
    print(out / f"{stem}.csv")
    return 0
