"""See a schedule before you run it: lr (every param group) and momentum against epoch.

    python scripts/plot_schedule.py scheduler=onecycle optimizer=sgd trainer.epochs=20
    python scripts/plot_schedule.py scheduler=clr --out docs/img/schedules

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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a clone

from omegaconf import DictConfig  # noqa: E402


def compose_config(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def schedule_trace(cfg: DictConfig) -> tuple[list[list[float | None]], int, list[str], list[str]]:
    """Rows (step, epoch, lr of every group..., momentum) as training would see them, the
    optimizer steps per epoch, the CSV header and the param groups' names."""
    from lrlab.schedules import build_scheduler, group_momentum
    from lrlab.training import build_components, epoch_batches, optimizer_steps_per_epoch

    c = build_components(cfg)
    train_batches, _ = epoch_batches(cfg, c.data)
    spe = optimizer_steps_per_epoch(len(train_batches), cfg.trainer.accumulate_grad_batches)
    optimizer = c.optimizer
    schedule = build_scheduler(cfg.scheduler, optimizer, spe, cfg.trainer.epochs)

    groups = optimizer.param_groups
    header = ["step", "epoch", "lr", *(f"lr_{i}" for i in range(1, len(groups))), "momentum"]
    rows = []
    for step in range(spe * cfg.trainer.epochs):
        lrs = [float(g["lr"]) for g in groups]
        rows.append([step, step / spe, *lrs, group_momentum(groups[0])])
        optimizer.step()  # no gradients: changes nothing, keeps torch's step-order check quiet
        schedule.step()
        if (step + 1) % spe == 0:
            schedule.epoch_end(1.0)  # a validation loss that never improves
    return rows, spe, header, [g.get("name", f"group {i}") for i, g in enumerate(groups)]


def plot(rows: list[list], group_names: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r[1] for r in rows]
    momenta = {r[-1] for r in rows}
    has_momentum = len(momenta) > 1  # a constant momentum goes in the title instead
    if len(momenta) == 1 and None not in momenta:
        title += f", momentum/beta1 {momenta.pop():g}"
    fig, axes = plt.subplots(
        2 if has_momentum else 1, 1, figsize=(7, 5 if has_momentum else 3.2), sharex=True
    )
    axes = list(axes) if has_momentum else [axes]
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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Plot the lr/momentum schedule of a training config (train.py overrides)."
    )
    parser.add_argument("overrides", nargs="*", help="train.py overrides, e.g. scheduler=clr")
    parser.add_argument("--out", default="outputs/schedules", help="output folder")
    parser.add_argument("--name", help="file name stem (default: the scheduler name)")
    args = parser.parse_intermixed_args(argv)

    from lrlab.errors import ConfigError

    try:
        cfg = compose_config(args.overrides)
        if str(cfg.optimizer.lr).lower() == "auto":
            raise ConfigError(
                "optimizer.lr=auto is found by the LR finder at run time; plot with a number "
                "(optimizer.lr=1e-3): the schedule's shape is the same for any peak"
            )
        rows, spe, header, group_names = schedule_trace(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None

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


if __name__ == "__main__":
    main()
