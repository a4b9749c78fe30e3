"""The schedule of a training config, step by step, as training would apply it (the schedule
preview, `lrlab-schedule` / scripts/plot_schedule.py): the same components, run plan (resizing,
optimizer switch) and schedules, stepped through the run's epochs without data."""

from __future__ import annotations

from omegaconf import DictConfig

from lrlab.engine.callbacks import CallbackList
from lrlab.engine.state import TrainState
from lrlab.errors import ConfigError
from lrlab.optim import group_momentum
from lrlab.tasks.build import build_components
from lrlab.tasks.config import check_config
from lrlab.tasks.run_plan import plan_run

Row = list[float | None]


def schedule_trace(cfg: DictConfig) -> tuple[list[Row], int, list[str], list[str]]:
    """Rows (step, epoch, lr of every group..., momentum[, scheduled keys, image_size,
    batch_size]) as training would see them, the optimizer steps per epoch, the CSV header and
    the param groups' names. The data loaders are built only for the number of steps."""
    if str(cfg.optimizer.get("lr")).lower() == "auto":
        raise ConfigError(
            "optimizer.lr=auto is found by the LR finder at run time; plot with a number "
            "(optimizer.lr=1e-3): the schedule's shape is the same for any peak"
        )
    check_config(cfg)
    t = cfg.trainer
    c = build_components(cfg)
    plan = plan_run(cfg, c, t.epochs)
    state = TrainState(
        model=c.model,
        scheduler=plan.build_scheduler(cfg, c.optimizer),
        step_fn=c.step_fn,
        train_batches=plan.train_batches,
        val_batches=plan.val_batches,
        epochs=t.epochs,
        steps_per_epoch=plan.steps_per_epoch,
        epoch_steps=plan.epoch_steps,
    )
    callbacks = CallbackList(plan.callbacks)  # Resizing, OptimizerSwitch
    size_plan = plan.size_plan

    extra: dict[int, dict[str, float]] = {}  # step -> scheduled keys, image and batch size
    lrs: list[list[float]] = []
    momenta: list[float | None] = []
    epochs: list[float] = []
    for epoch in range(t.epochs):
        state.epoch = epoch
        callbacks.on_epoch_start(state)
        length = state.epoch_length(epoch)
        for j in range(length):
            groups = state.optimizer.param_groups
            lrs.append([float(g["lr"]) for g in groups])
            momenta.append(group_momentum(groups[0]))
            epochs.append(epoch + j / length if plan.epoch_steps else state.step / length)
            values = {k: v for k, v in state.scheduler.param_values().items() if k != "momentum"}
            if size_plan is not None:  # the size of the step's last batch, as the records
                last = min((j + 1) * t.accumulate_grad_batches, len(plan.train_batches)) - 1
                values["image_size"] = size_plan.train_size(epoch, last)
                if plan.epoch_steps:
                    values["batch_size"] = size_plan.batch_size(epoch)
            extra[state.step] = values
            state.optimizer.step()  # no gradients: changes nothing, keeps torch's order check quiet
            state.scheduler.step()
            state.step += 1
        state.scheduler.epoch_end(1.0)  # a validation loss that never improves

    keys = list(dict.fromkeys(k for values in extra.values() for k in values))
    n_groups = len(c.optimizer.param_groups)
    header = ["step", "epoch", "lr", *(f"lr_{i}" for i in range(1, n_groups)), "momentum", *keys]
    rows: list[Row] = [
        [step, epochs[step], *lrs[step], momenta[step], *(extra[step].get(k) for k in keys)]
        for step in range(len(lrs))
    ]
    names = [g.get("name", f"group {i}") for i, g in enumerate(c.optimizer.param_groups)]
    return rows, plan.steps_per_epoch, header, names
