"""What a run steps through besides its components: each epoch's batches (`resizing:`), the
optimizer steps of every epoch, and the optimizer switch. Training and the schedule preview
both plan through here, so the preview shows what training does."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lrlab.callbacks import OptimizerSwitch, Resizing
from lrlab.data.resizing import (
    FixedSize,
    ResizedBatches,
    ResizingConfig,
    SizePlan,
    refuse_fixed_input_size,
    staged_loader,
)
from lrlab.engine.batches import epoch_batches
from lrlab.errors import ConfigError
from lrlab.models import training_settings
from lrlab.optim import build_optimizer, build_scheduler
from lrlab.optim.optimizer import scaled_peak_lr
from lrlab.optim.switch import WHERE, describe, is_switching
from lrlab.tasks.build import Components, optimizer_steps_per_epoch

log = logging.getLogger(__name__)


@dataclass
class RunPlan:
    train_batches: Any
    val_batches: Any
    steps_per_epoch: int  # at data.batch_size: what the schedules count an epoch as
    epoch_steps: list[int] | None  # each planned epoch's real steps, when the batch size changes
    schedule_epochs: int  # the first schedule's length: the planned epochs, or up to the switch
    callbacks: list[Any] = field(default_factory=list)  # before RunRecords (they set values)
    summary: dict[str, Any] = field(default_factory=dict)  # facts for summary.json
    size_plan: SizePlan | None = None

    def build_scheduler(self, cfg: DictConfig, optimizer: torch.optim.Optimizer) -> Any:
        """The first optimizer's schedule (`scheduler:`)."""
        steps = self.epoch_steps[: self.schedule_epochs] if self.epoch_steps else None
        return build_scheduler(
            cfg.scheduler, optimizer, self.steps_per_epoch, self.schedule_epochs, steps
        )


def resizing_config(cfg: DictConfig) -> ResizingConfig:
    return OmegaConf.to_object(cfg.resizing)  # type: ignore[return-value]


def plan_run(cfg: DictConfig, c: Components, planned: int) -> RunPlan:
    """The run's plan over `planned` epochs (a resumed run keeps its checkpoint's)."""
    t = cfg.trainer
    resizing = resizing_config(cfg)
    size_plan = None
    if resizing.active:
        size_plan = SizePlan(resizing, cfg.seed, c.data.image_size, int(cfg.data.batch_size))
    train_loader, sampler = c.data.train_loader, None
    if size_plan is not None and size_plan.changes_batch_size:
        if t.overfit_batches:
            raise ConfigError(
                "resizing.stages[].batch_size: trainer.overfit_batches trains on a fixed set of "
                "batches, whose size cannot change; leave the stages' batch_size out"
            )
        train_loader = staged_loader(train_loader, int(cfg.data.batch_size))
        sampler = train_loader.batch_sampler
    train_batches, val_batches = epoch_batches(
        train_loader,
        c.data.val_loader,
        t.limit_train_batches,
        t.limit_val_batches,
        t.overfit_batches,
    )
    if t.accumulate_grad_batches > len(train_batches):  # a step would average fewer
        raise ConfigError(
            f"trainer.accumulate_grad_batches={t.accumulate_grad_batches} is more than the "
            f"{len(train_batches)} training batches an epoch has (data.batch_size="
            f"{cfg.data.batch_size}"
            + (
                f", trainer.limit_train_batches={t.limit_train_batches}"
                if t.limit_train_batches
                else ""
            )
            + f"): use at most {len(train_batches)}"
        )
    spe = optimizer_steps_per_epoch(len(train_batches), t.accumulate_grad_batches)
    plan = RunPlan(train_batches, val_batches, spe, None, planned, size_plan=size_plan)
    if size_plan is not None:
        _plan_resizing(plan, size_plan, sampler, c, t.accumulate_grad_batches, planned)
    switch = cfg.get("optimizer_switch")
    if is_switching(switch):
        _plan_switch(plan, cfg, c, planned)
    return plan


def _plan_resizing(
    plan: RunPlan, size_plan: SizePlan, sampler: Any, c: Components, accumulate: int, planned: int
) -> None:
    cfg, native = size_plan.cfg, size_plan.native_size
    sizes = {s.size for s in cfg.stages} | set(cfg.sizes) | {size_plan.val_size}
    if sizes - {native}:
        refuse_fixed_input_size(c.model)
    if max(sizes) > native:
        log.warning(
            "resizing: sizes up to %d px from %d px images: those batches are upsampled "
            "(set the data's image size to the largest size)",
            max(sizes),
            native,
        )
    batches = ResizedBatches(plan.train_batches, size_plan)
    plan.callbacks.append(Resizing(size_plan, batches, sampler))
    plan.train_batches = batches
    if size_plan.val_size != native:
        plan.val_batches = FixedSize(plan.val_batches, size_plan.val_size, cfg.mode)
    if sampler is not None:  # each epoch's optimizer steps at its batch size
        plan.epoch_steps = []
        for epoch in range(planned):
            sampler.batch_size = size_plan.batch_size(epoch)
            plan.epoch_steps.append(optimizer_steps_per_epoch(len(batches), accumulate))
        sampler.batch_size = size_plan.batch_size(0)
    plan.summary["resizing"] = {
        "stages": [vars(s) for s in cfg.stages],
        "sizes": list(cfg.sizes),
        "val_size": size_plan.val_size,
        "data_image_size": native,
        **({"epoch_steps": plan.epoch_steps} if plan.epoch_steps else {}),
    }


def _plan_switch(plan: RunPlan, cfg: DictConfig, c: Components, planned: int) -> None:
    node = cfg.optimizer_switch
    epoch, t = int(node.epoch), cfg.trainer
    plan.schedule_epochs = epoch
    settings = training_settings(cfg.model)
    rest = plan.epoch_steps[epoch:] if plan.epoch_steps else None

    def build() -> tuple[torch.optim.Optimizer, Any]:
        lr, _ = scaled_peak_lr(
            node.optimizer,
            int(cfg.data.batch_size),
            t.accumulate_grad_batches,
            f"{WHERE}.optimizer",
        )
        optimizer = build_optimizer(node.optimizer, c.model, settings, lr=lr)
        scheduler = build_scheduler(
            node.scheduler,
            optimizer,
            plan.steps_per_epoch,
            planned - epoch,
            rest,
            f"{WHERE}.scheduler",
        )
        return optimizer, scheduler

    build()  # a bad second optimizer or schedule fails now, not mid-run
    plan.summary["optimizer_switch"] = describe(OmegaConf.to_container(node, resolve=True))
    plan.callbacks.append(
        OptimizerSwitch(epoch, build, plan.summary["optimizer_switch"]["optimizer"])
    )
