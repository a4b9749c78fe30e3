"""LR range test (Smith 2015, as popularised by fastai's `lr_find`).

The learning rate grows from `start_lr` to `end_lr` over `num_it` optimizer steps while the
training loss is recorded; the model, optimizer, RNG and data-loader shuffling state are put back
exactly as they were afterwards (`restore.preserved_state`). `range_test` takes a
`step_fn(batches) -> loss` that does one optimizer step over a list of (accumulated)
micro-batches, so any training step plugs in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lrlab.errors import ConfigError
from lrlab.lr_finder.restore import preserved_state
from lrlab.lr_finder.suggestions import suggest
from lrlab.utils import json_safe

StepFn = Callable[[list[Any]], "torch.Tensor | float"]

MODES = ("exp", "linear")


def lr_schedule(start_lr: float, end_lr: float, num_it: int, mode: str = "exp") -> np.ndarray:
    """The lr of each of the `num_it` steps, from `start_lr` to `end_lr` inclusive.

    exp: lr_i = start * (end/start) ** (i/(num_it-1)), as torch-lr-finder's ExponentialLR;
    fastai's LRFinder uses i/num_it and so never quite reaches `end_lr`.
    """
    steps = np.arange(num_it) / (num_it - 1)
    if mode == "exp":
        return start_lr * (end_lr / start_lr) ** steps
    if mode == "linear":
        return start_lr + steps * (end_lr - start_lr)
    raise ConfigError(f"lr_find.mode={mode!r} is not one of {list(MODES)}")


class SmoothedLoss:
    """fastai's AvgSmoothLoss: an EMA of the loss divided by (1 - beta**count) (bias correction)."""

    def __init__(self, beta: float = 0.98) -> None:
        self.beta, self.avg, self.count = beta, 0.0, 0

    def update(self, loss: float) -> float:
        self.count += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        return self.avg / (1 - self.beta**self.count)


@dataclass
class LRFindResult:
    lrs: list[float]
    raw_losses: list[float]
    smoothed_losses: list[float]
    suggestions: dict[str, float | None]
    stopped_early: bool
    stop_reason: str | None  # "diverged" | "non-finite" | None
    num_it: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self, chosen: str | None = None) -> dict[str, Any]:
        return {
            "lrs": self.lrs,
            "losses": {
                "raw": json_safe(self.raw_losses),  # JSON has no NaN/inf: null
                "smoothed": json_safe(self.smoothed_losses),
            },
            "suggestions": self.suggestions,
            "chosen": chosen,
            "stopped_early": self.stopped_early,
            "stop_reason": self.stop_reason,
            "num_it": self.num_it,
            "steps": len(self.lrs),
            "settings": self.settings,
        }


def _group_lr_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's lr relative to the optimizer's own lr (`optimizer.lr` in the config: the head
    group), so layer-wise lr ratios survive the sweep."""
    base = float(optimizer.defaults["lr"])
    return [float(g["lr"]) / base for g in optimizer.param_groups]


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches forever: a new pass over `loader` whenever it runs out."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the train loader yields no batches; the LR range test needs data")


def range_test(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Iterable[Any],
    step_fn: StepFn,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_it: int = 100,
    mode: str = "exp",
    smooth_beta: float = 0.98,
    stop_div: bool = True,
    diverge_threshold: float = 4.0,
    accumulate_grad_batches: int = 1,
    extra_state: Iterable[Any] = (),
    train_mode: Callable[[], Any] | None = None,
) -> LRFindResult:
    """Run the range test and restore everything afterwards (see `preserved_state`).

    `step_fn(batches)` must do one optimizer step over the micro-batches in `batches` (a list of
    `accumulate_grad_batches` loader batches) and return their mean loss. The recorded lr is the
    optimizer's own lr (`optimizer.defaults["lr"]` scale); other groups keep their ratio to it.
    `train_mode()` puts the model in training mode (default `model.train()`; training passes
    its Freezer's, which keeps frozen BatchNorm layers in eval mode).
    """
    lrs = lr_schedule(start_lr, end_lr, num_it, mode)
    ratios = _group_lr_ratios(optimizer)
    smoother = SmoothedLoss(smooth_beta)
    best = math.inf
    result = LRFindResult([], [], [], {}, False, None, num_it)
    with preserved_state(model, optimizer, loaders=[train_loader], extra=extra_state):
        if train_mode is None:
            model.train()
        else:
            train_mode()
        batches = _cycle(train_loader)
        try:
            for lr in lrs:
                for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                    group["lr"] = float(lr) * ratio
                loss = float(step_fn([next(batches) for _ in range(accumulate_grad_batches)]))
                smoothed = smoother.update(loss)
                result.lrs.append(float(lr))
                result.raw_losses.append(loss)
                result.smoothed_losses.append(smoothed)
                # As fastai: the diverging point is kept on the curve, then the test stops.
                if not (math.isfinite(loss) and math.isfinite(smoothed)):
                    result.stopped_early, result.stop_reason = True, "non-finite"
                    break
                best = min(best, smoothed)
                if stop_div and smoothed > diverge_threshold * best:
                    result.stopped_early, result.stop_reason = True, "diverged"
                    break
        finally:
            batches.close()  # shuts a loader's worker processes down now, not at GC
    result.suggestions = suggest(result.lrs, result.smoothed_losses, num_it)
    return result
