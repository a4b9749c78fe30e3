"""Everything a run trains with, built from the config in a fixed, seeded order (training,
the LR finder and the schedule preview all build through here)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lrlab.data import DataBundle, build_data
from lrlab.data.augment import batch_transform, effective_augment
from lrlab.data.loaders import default_workers
from lrlab.engine.distributed import (
    DistributedTrainStep,
    data_parallel,
    device_of_this_rank,
    init_process_group,
    shard_loaders,
)
from lrlab.engine.step import TrainStep
from lrlab.models import build_model, training_settings
from lrlab.models.freezing import Freezer
from lrlab.optim import build_optimizer
from lrlab.optim.optimizer import scaled_peak_lr
from lrlab.parallel import available_cores, is_distributed, threads_for_batch, threads_per_job
from lrlab.utils import apply_device_settings, seed_everything, select_device, select_precision

log = logging.getLogger(__name__)

TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before any run sets its own

# `optimizer.lr=auto`: the optimizer is built with this lr, then the LR finder rescales it.
PLACEHOLDER_LR = 1e-3


@dataclass
class Components:
    device: torch.device
    data: DataBundle
    model: nn.Module
    freezer: Freezer
    optimizer: torch.optim.Optimizer
    step_fn: TrainStep
    lr_scaling: dict | None = None  # optimizer.lr_scaling's record (summary.json), if it scales


def trained_augment(cfg: DictConfig) -> dict:
    """The augmentation the run trains with (summary.json's `augment`): the `augment` group,
    or none with `data.augment=false`."""
    group = OmegaConf.to_container(cfg.augment, resolve=True) if cfg.get("augment") else None
    return effective_augment(group, bool(cfg.data.get("augment", True)))


def is_auto_lr(cfg: DictConfig) -> bool:
    return cfg.optimizer.get("lr") == "auto"


def build_components(cfg: DictConfig) -> Components:
    """Seeded data, model, optimizer and step function. With `optimizer.lr=auto` the optimizer
    gets a placeholder lr that the LR range test replaces."""
    t = cfg.trainer
    seed_everything(cfg.seed)
    # Both set on every build, never left as the last job set them: a sequential sweep runs
    # every job in one process.
    torch.use_deterministic_algorithms(bool(t.deterministic), warn_only=True)
    threads = threads_per_job(t.num_threads)  # cores / jobs when a launcher runs several at once
    torch.set_num_threads(threads or TORCH_DEFAULT_THREADS)
    device = device_of_this_rank(select_device(t.device))
    apply_device_settings(device, t.cudnn_benchmark, t.matmul_precision, t.deterministic)
    precision = select_precision(str(t.precision), device)
    if device.type == "cpu" and precision != "32":
        log.warning(
            "trainer.precision=%s on the CPU: mixed precision is meant for GPUs and is several "
            "times slower than 32 here (benchmarks/README.md)",
            t.precision,
        )
    workers = (
        t.num_workers if t.num_workers is not None else default_workers(device, available_cores())
    )
    data = build_data(
        cfg.data,
        seed=cfg.seed,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=t.prefetch_factor,
        device=device,
        distributed=is_distributed(),
    )
    if is_distributed():  # torchrun (or a multi-task SLURM job): this process's shard
        init_process_group()
        data = shard_loaders(data, cfg.seed)
    if device.type == "cpu":  # one thread where the batches are too small for two
        batch_values = int(cfg.data.batch_size) * data.in_channels * data.image_size**2
        torch.set_num_threads(threads_for_batch(threads, batch_values) or TORCH_DEFAULT_THREADS)
    model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size).to(device)
    if t.channels_last:  # NHWC convolutions: 1.3x faster flowers epochs on CPU (benchmarks/)
        model = model.to(memory_format=torch.channels_last)
    # model.freeze / fine_tune: frozen groups keep requires_grad=False but stay in the optimizer.
    settings = training_settings(cfg.model)
    freezer = Freezer.from_settings(settings, model, t.epochs, cfg.model.get("pretrained"))
    # What the train step runs; checkpoints, validation and the freezer use `model` itself, so
    # checkpoints load without DDP or torch.compile. DDP wraps before any layer is frozen.
    step_model = data_parallel(model, device, freezer.n_frozen > 0) if is_distributed() else model
    if t.compile:
        step_model = torch.compile(step_model, backend=t.compile_backend, mode=t.compile_mode)
    freezer.apply(0)  # the LR range test, like fastai's, runs on the initially frozen model
    # optimizer.lr_scaling: the peak for this run's effective batch size (None: as configured)
    scaled_lr, scaling = scaled_peak_lr(
        cfg.optimizer, int(cfg.data.batch_size), t.accumulate_grad_batches
    )
    optimizer = build_optimizer(
        cfg.optimizer, model, settings, lr=PLACEHOLDER_LR if is_auto_lr(cfg) else scaled_lr
    )
    step_type = DistributedTrainStep if is_distributed() else TrainStep
    step_fn = step_type(
        step_model,
        optimizer,
        device,
        precision,
        t.grad_clip,
        t.label_smoothing,
        batch_transform(trained_augment(cfg), data.num_classes),
    )
    return Components(device, data, model, freezer, optimizer, step_fn, scaling)


def optimizer_steps_per_epoch(num_batches: int, accumulate: int) -> int:
    return -(-num_batches // accumulate)  # ceil
