"""One optimizer step (`TrainStep`: autocast, gradient accumulation, clipping, grad scaling) and
validation (`evaluate`). The LR finder drives the same `TrainStep`."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = {"32": None, "16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}
Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepResult:
    """On-device sums of one optimizer step: the caller decides when to sync with the host."""

    loss_sum: torch.Tensor  # loss x samples
    correct: torch.Tensor  # correct predictions
    n: int  # samples
    _loss: float | None = None

    def __iter__(self):  # loss_sum, correct, n = train_step(batches)
        return iter((self.loss_sum, self.correct, self.n))

    def mean_loss(self) -> float:
        """The step's mean loss on the host (one device sync, shared by every caller)."""
        if self._loss is None:
            self._loss = (self.loss_sum / self.n).item()
        return self._loss


class TrainStep:
    """One optimizer step over a group of micro-batches (gradient accumulation)."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: str = "32",
        grad_clip: float | None = None,
        label_smoothing: float = 0.0,
        batch_transform: Callable[[torch.Tensor, torch.Tensor], Batch] | None = None,
    ) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        # On the device, before the forward pass: mixup / cutmix (augment.batch), soft labels out
        self.batch_transform = batch_transform
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.precision = str(precision)
        self.autocast_dtype = PRECISIONS[self.precision]
        self.grad_clip = grad_clip
        # fp16 needs loss scaling to keep small gradients; bf16 has fp32's range and does not.
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.autocast_dtype == torch.float16
        )
        if self.scaler.is_enabled():
            # The scaler skips optimizer.step() on overflow (normal while it calibrates); torch
            # then warns that the scheduler stepped first. The schedule is right regardless.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
        )

    def __call__(self, batches: Sequence[Batch]) -> StepResult:
        n_total = sum(len(y) for _, y in batches)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for x, y in batches:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            if self.batch_transform is not None:
                x, y = self.batch_transform(x, y)
            with self.autocast():
                logits = self.model(x)
                loss = self.loss_fn(logits, y)  # class indices, or probabilities (soft labels)
            # Weight by samples so a short last group counts each sample like any other.
            self.scaler.scale(loss * (len(y) / n_total)).backward()
            loss_sum += loss.detach().float() * len(y)
            correct += (logits.argmax(1) == hard_labels(y)).sum()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return StepResult(loss_sum, correct, n_total)

    # Validation hooks: a data parallel step (lrlab.engine.distributed) syncs and sums here.
    def before_evaluate(self, model: nn.Module) -> None:
        pass

    def reduce_sums(self, totals: torch.Tensor) -> torch.Tensor:
        return totals


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices; soft labels (mixup, cutmix) count as their dominant class."""
    return y.argmax(1) if y.ndim == 2 else y


def grouped(batches: Iterable[Batch], size: int) -> Iterator[list[Batch]]:
    """Consecutive groups of `size` batches; the last group may be shorter."""
    it = iter(batches)
    while group := list(itertools.islice(it, size)):
        yield group


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Iterable[Batch], step: TrainStep) -> tuple[float, float]:
    """Validation loss (plain cross-entropy, no label smoothing) and accuracy (over every
    process's part of the validation set in a data parallel run)."""
    step.before_evaluate(model)
    model.eval()
    loss_sum = torch.zeros((), device=step.device)
    correct = torch.zeros((), device=step.device, dtype=torch.long)
    count = 0
    for x, y in batches:
        x, y = x.to(step.device, non_blocking=True), y.to(step.device, non_blocking=True)
        with step.autocast():
            logits = model(x)
        loss_sum += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        count += len(y)
    totals = torch.stack([loss_sum.double(), correct.double(), loss_sum.new_tensor(count).double()])
    loss_sum, correct, count = step.reduce_sums(totals).tolist()
    return loss_sum / count, correct / count
