"""The schedule of a training config, step by step, as training would apply it (the schedule
preview, `lrlab-schedule` / scripts/plot_schedule.py)."""

from __future__ import annotations

from omegaconf import DictConfig

from lrlab.engine.batches import epoch_batches
from lrlab.errors import ConfigError
from lrlab.optim import build_scheduler, group_momentum
from lrlab.tasks.build import build_components, optimizer_steps_per_epoch
from lrlab.tasks.config import check_config

Row = list[float | None]


def schedule_trace(cfg: DictConfig) -> tuple[list[Row], int, list[str], list[str]]:
    """Rows (step, epoch, lr of every group..., momentum) as training would see them, the
    optimizer steps per epoch, the CSV header and the param groups' names. The data loaders
    are built only for the real number of steps per epoch."""
    if str(cfg.optimizer.get("lr")).lower() == "auto":
        raise ConfigError(
            "optimizer.lr=auto is found by the LR finder at run time; plot with a number "
            "(optimizer.lr=1e-3): the schedule's shape is the same for any peak"
        )
    check_config(cfg)
    t = cfg.trainer
    c = build_components(cfg)
    train_batches, _ = epoch_batches(
        c.data.train_loader, c.data.val_loader, t.limit_train_batches, None, t.overfit_batches
    )
    spe = optimizer_steps_per_epoch(len(train_batches), t.accumulate_grad_batches)
    optimizer = c.optimizer
    schedule = build_scheduler(cfg.scheduler, optimizer, spe, t.epochs)

    groups = optimizer.param_groups
    header = ["step", "epoch", "lr", *(f"lr_{i}" for i in range(1, len(groups))), "momentum"]
    rows: list[Row] = []
    for step in range(spe * t.epochs):
        lrs = [float(g["lr"]) for g in groups]
        rows.append([step, step / spe, *lrs, group_momentum(groups[0])])
        optimizer.step()  # no gradients: changes nothing, keeps torch's step-order check quiet
        schedule.step()
        if (step + 1) % spe == 0:
            schedule.epoch_end(1.0)  # a validation loss that never improves
    return rows, spe, header, [g.get("name", f"group {i}") for i, g in enumerate(groups)]
