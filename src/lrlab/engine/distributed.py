"""Data parallel training over the processes `torchrun --nproc_per_node=N train.py ...` starts.

Every process builds the same model from the same seed; `DistributedDataParallel` averages the
gradients, so the replicas stay identical. Each process trains on its shard of every epoch
(a `DistributedSampler` seeded from the run's seed, re-shuffled per epoch) and validates on its
shard of the validation set; the step's and the validation's sums are added over all processes,
so every process sees the same global losses and accuracies (the records, divergence checks,
plateau schedules and early stopping all agree). `data.batch_size` is per process: the global
batch is batch_size x world size x accumulate_grad_batches (docs/scaling.md).

The process group uses gloo for CPU tensors and, where CUDA is available, NCCL for CUDA ones:
the backend follows the device the run trains on.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from lrlab.data import DataBundle
from lrlab.engine.state import Stop
from lrlab.engine.step import Batch, StepResult, TrainStep
from lrlab.parallel import is_distributed, local_rank, process_rank, world_size

log = logging.getLogger(__name__)

OTHER_RANK_STOP = ("preempted", "stopped by a signal to another process of the run")


def init_process_group() -> None:
    """Join the run's process group (torchrun's environment: MASTER_ADDR, RANK, ...), once."""
    if not is_distributed() or dist.is_initialized():
        return
    backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    atexit.register(leave_process_group)
    log.info("process %d of %d (backend %s)", process_rank(), world_size(), backend)


def leave_process_group() -> None:
    """At exit, together: a process that tears its connections down while another still uses
    them can abort the other ("terminate called without an active exception")."""
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def device_of_this_rank(device: torch.device) -> torch.device:
    """`cuda` means this process's GPU (cuda:<LOCAL_RANK>) in a data parallel run."""
    if is_distributed() and device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank())
    return device


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's `value` on every process (any picklable object)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard_loaders(data: DataBundle, seed: int) -> DataBundle:
    """This process's part of the data: a seeded DistributedSampler over the training set
    (every process gets ceil(N / world) samples a epoch, a few repeated to make them even) and
    every world-th validation sample (no repeats: the validation sums stay exact)."""
    train, val = data.train_loader, data.val_loader
    sampler = EpochSampler(
        train.dataset, world_size(), process_rank(), shuffle=True, seed=seed, drop_last=False
    )
    val_part = Subset(val.dataset, range(process_rank(), len(val.dataset), world_size()))

    def loader(like: DataLoader, **kwargs: Any) -> DataLoader:
        return DataLoader(
            batch_size=like.batch_size,
            num_workers=like.num_workers,
            pin_memory=like.pin_memory,
            persistent_workers=False,
            collate_fn=like.collate_fn,
            **kwargs,
        )

    return replace(
        data,
        # The generator still seeds the workers (and is saved with checkpoints, as before).
        train_loader=loader(
            train, dataset=train.dataset, sampler=sampler, generator=train.generator
        ),
        val_loader=loader(val, dataset=val_part, shuffle=False),
    )


class EpochSampler(DistributedSampler):
    """A DistributedSampler that shuffles for the run's current epoch: its order is a function
    of (seed, epoch), which is what lets a mid-epoch resume replay it."""

    epoch_of: Callable[[], int] | None = None  # set by `attach`: the TrainState's epoch

    def __iter__(self) -> Iterator[int]:
        if self.epoch_of is not None:
            self.set_epoch(self.epoch_of())
        return super().__iter__()


def data_parallel(model: nn.Module, device: torch.device, find_unused: bool) -> nn.Module:
    """The model wrapped for gradient averaging. Wrap before any layer is frozen:
    `find_unused` lets frozen layers (model.freeze / fine_tune) go without gradients."""
    return nn.parallel.DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=find_unused,
    )


class DistributedTrainStep(TrainStep):
    """A TrainStep whose results are the sums over all processes, and whose processes stop
    together: a stop signal (SIGTERM, ...) that reaches one of them stops all of them after the
    same optimizer step, so none waits forever for the others' gradients."""

    requests: Stop | None = None  # where StopSignals records this process's signal (`watch`)
    state: Any = None  # the TrainState whose stop request the processes agree on

    def watch(self, signals: Any, state: Any) -> None:
        self.requests, self.state = Stop(), state
        signals.attach(self.requests)

    def __call__(self, batches: Sequence[Batch]) -> StepResult:
        result = super().__call__(batches)
        sums = torch.stack([result.loss_sum.double(), result.correct.double()])
        dist.all_reduce(sums)
        if self.requests is not None:
            stop = torch.tensor([1 if self.requests.signal else 0])
            dist.all_reduce(stop)  # a CPU tensor: gloo, no wait for the GPU
            if stop.item() and self.state.stop.signal is None:
                # every process requests the stop after this same step (the loop acts on it)
                self.state.stop.signal = self.requests.signal or OTHER_RANK_STOP
        # Every process has the same number of samples per step (the sampler evens them out).
        return StepResult(sums[0].float(), sums[1].long(), result.n * world_size())

    def before_evaluate(self, model: nn.Module) -> None:
        # Batch norm statistics as rank 0 has them (each process updated its own copy with its
        # own batches since the last broadcast): validation and checkpoints agree.
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)

    def reduce_sums(self, totals: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(totals)
        return totals


def attach(signals: Any, state: Any) -> None:
    """`signals.attach(state.stop)`; in a data parallel run, the processes also agree on stopping,
    and the training sampler follows the state's epoch."""
    if not isinstance(state.step_fn, DistributedTrainStep):
        signals.attach(state.stop)
        return
    state.step_fn.watch(signals, state)
    loader = getattr(state.train_batches, "loader", state.train_batches)  # under limit_*
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, EpochSampler):
        sampler.epoch_of = lambda: state.epoch
