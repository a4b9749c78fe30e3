"""LR range test (Smith 2015, as popularised by fastai's `lr_find`).

The learning rate grows from `start_lr` to `end_lr` over `num_it` optimizer steps while the
training loss is recorded; the model, optimizer, RNG and data-loader shuffling state are put back
exactly as they were afterwards. Four suggestions are read off the smoothed curve with fastai's
definitions (fastai/callback/schedule.py: `valley`, `slide`, `minimum`, `steep`, `lr_find`).

- `range_test(...)` is the loop; it takes a `step_fn(batches) -> loss` that does one optimizer
  step over a list of (accumulated) micro-batches, so any training step plugs in.
- `run_from_config(cfg)` backs `find_lr.py`; `resolve_auto_lr(...)` backs `optimizer.lr=auto`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from lrlab.entry import SweepReport
from lrlab.errors import ConfigError
from lrlab.utils import json_safe, rng_state, set_rng_state

log = logging.getLogger(__name__)

StepFn = Callable[[list[Any]], "torch.Tensor | float"]

MODES = ("exp", "linear")
# fastai's `lr_find` drops the first num_it//10 and the last 5 points before suggesting.
SKIP_END = 5
# `optimizer.lr=auto`: the optimizer is built with this lr, then every group is rescaled.
PLACEHOLDER_LR = 1e-3


# --- schedule and smoothing -------------------------------------------------------------------


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


# --- suggestions (fastai's definitions; each takes the trimmed curve and returns an lr) --------


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The longest valley: the longest strictly decreasing subsequence (by index) of the loss.

    As fastai: with L its length and `end` the first index where it ends, start = end - L and
    the pick is start + int(L/3) + int(L/3/2), a bit past the middle of the valley.
    """
    n = len(losses)
    run = [1] * n  # length of the longest decreasing subsequence that ends at i
    for i in range(n):
        for j in range(i):
            if losses[i] < losses[j]:
                run[i] = max(run[i], run[j] + 1)
    end = int(np.argmax(run))  # the first index reaching the longest, as fastai's strict `<`
    # fastai only moves its (start, end) = (0, 0) when some run is longer than 1.
    start = end - run[end] if run[end] > 1 else 0
    sections = (end - start) / 3
    idx = start + int(sections) + int(sections / 2)
    # start can be -1 (a valley from the first point); fastai would then wrap a 2-point valley
    # round to the last point. Clamp instead.
    return float(lrs[max(idx, 0)])


def slide(
    lrs: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005
) -> float | None:
    """fastai's interval slide rule on the loss gradient (np.gradient over the index).

    A window of `lr_diff` points slides left from the end of the curve while the gradients at its
    two ends differ by more than `thresh`; the suggestion is the left end of the last window that
    still differed (the first window's left end if none did). None: fewer than lr_diff+1 points.
    """
    n = len(losses)
    if n < lr_diff + 1:
        return None
    grad = np.gradient(np.asarray(losses, dtype=float))
    right = n - 1
    left = right - lr_diff
    suggestion = lrs[left]
    while left >= 0 and abs(grad[right] - grad[left]) > thresh:
        suggestion = lrs[left]
        right -= 1
        left -= 1
    return float(suggestion)


def minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """One tenth of the lr at the lowest loss."""
    return float(lrs[int(np.argmin(losses))]) / 10


def steep(lrs: np.ndarray, losses: np.ndarray) -> float | None:
    """The lr where the loss falls fastest against log(lr): the left end of the steepest segment."""
    if len(losses) < 2:
        return None
    grads = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(grads))])


SUGGESTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float | None]] = {
    "valley": valley,
    "slide": slide,
    "minimum": minimum,
    "steep": steep,
}


def suggestion_window(
    lrs: Sequence[float], losses: Sequence[float], num_it: int, skip_end: int = SKIP_END
) -> tuple[np.ndarray, np.ndarray]:
    """The part of the curve fastai suggests from: `[num_it//10 : -skip_end]`, cut at the first
    non-finite loss (fastai cuts at the first NaN; an inf is as diverged, so it is cut too)."""
    end = len(lrs) - skip_end if skip_end > 0 else len(lrs)
    lrs_a = np.asarray(lrs, dtype=float)[num_it // 10 : end]
    losses_a = np.asarray(losses, dtype=float)[num_it // 10 : end]
    bad = np.flatnonzero(~np.isfinite(losses_a))
    if len(bad):
        lrs_a, losses_a = lrs_a[: bad[0]], losses_a[: bad[0]]
    return lrs_a, losses_a


def suggest(lrs: Sequence[float], losses: Sequence[float], num_it: int) -> dict[str, float | None]:
    """All four suggestions on the trimmed (smoothed) curve; None where too few points are left."""
    lrs_a, losses_a = suggestion_window(lrs, losses, num_it)
    if len(losses_a) == 0:
        return dict.fromkeys(SUGGESTIONS)
    return {name: fn(lrs_a, losses_a) for name, fn in SUGGESTIONS.items()}


# --- exact save/restore -----------------------------------------------------------------------


def _loader_generators(loaders: Iterable[Any]) -> list[torch.Generator]:
    """The torch.Generators a DataLoader's shuffling draws from (its own, its samplers')."""
    found: dict[int, torch.Generator] = {}
    for loader in loaders:
        candidates = [
            getattr(loader, "generator", None),
            getattr(getattr(loader, "sampler", None), "generator", None),
            getattr(
                getattr(getattr(loader, "batch_sampler", None), "sampler", None), "generator", None
            ),
        ]
        for gen in candidates:
            if isinstance(gen, torch.Generator):
                found[id(gen)] = gen
    return list(found.values())


@contextmanager
def preserved_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loaders: Iterable[Any] = (),
    extra: Iterable[Any] = (),
) -> Iterator[None]:
    """Put model (parameters, buffers, grads, train/eval modes), optimizer (state and param groups),
    global RNGs, the loaders' shuffling generators and any `extra` objects with
    state_dict/load_state_dict (e.g. a GradScaler) back exactly as they were on exit."""
    # Model tensors go to the CPU so a GPU run does not hold two copies; load_state_dict copies
    # them back in place, bit for bit, so the optimizer keeps pointing at the same parameters.
    model_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    optim_state = copy.deepcopy(optimizer.state_dict())
    rng = rng_state()
    generators = _loader_generators(loaders)
    generator_states = [g.get_state() for g in generators]
    extras = [(obj, copy.deepcopy(obj.state_dict())) for obj in extra]
    try:
        yield
    finally:
        model.load_state_dict(model_state)
        for p, g in zip(model.parameters(), grads, strict=True):
            p.grad = g
        for m, training in zip(model.modules(), modes, strict=True):
            m.training = training
        optimizer.load_state_dict(optim_state)
        set_rng_state(rng)
        for g, s in zip(generators, generator_states, strict=True):
            g.set_state(s)
        for obj, s in extras:
            obj.load_state_dict(s)


# --- the range test ---------------------------------------------------------------------------


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


# --- config, outputs ----------------------------------------------------------------------


def validate_lr_find_cfg(lf: DictConfig) -> None:
    """One clear ConfigError per bad `lr_find.*` value, before any work starts."""
    if not (isinstance(lf.start_lr, int | float) and lf.start_lr > 0):
        raise ConfigError(f"lr_find.start_lr must be a positive number, got {lf.start_lr!r}")
    if not (isinstance(lf.end_lr, int | float) and lf.end_lr > lf.start_lr):
        raise ConfigError(
            f"lr_find.end_lr must be > lr_find.start_lr={lf.start_lr}, got {lf.end_lr!r}"
        )
    if not (isinstance(lf.num_it, int) and lf.num_it >= 2):
        raise ConfigError(f"lr_find.num_it must be an integer >= 2, got {lf.num_it!r}")
    if lf.mode not in MODES:
        raise ConfigError(f"lr_find.mode={lf.mode!r} is not one of {list(MODES)}")
    if not (isinstance(lf.smooth_beta, int | float) and 0 <= lf.smooth_beta < 1):
        raise ConfigError(f"lr_find.smooth_beta must be in [0, 1), got {lf.smooth_beta!r}")
    if not isinstance(lf.stop_div, bool):
        raise ConfigError(f"lr_find.stop_div must be true or false, got {lf.stop_div!r}")
    if not (isinstance(lf.diverge_threshold, int | float) and lf.diverge_threshold > 1):
        raise ConfigError(
            f"lr_find.diverge_threshold must be a number > 1, got {lf.diverge_threshold!r}"
        )
    if lf.suggestion not in SUGGESTIONS:
        raise ConfigError(f"lr_find.suggestion={lf.suggestion!r} is not one of {list(SUGGESTIONS)}")


def range_test_kwargs(lf: DictConfig) -> dict[str, Any]:
    validate_lr_find_cfg(lf)
    return {
        "start_lr": float(lf.start_lr),
        "end_lr": float(lf.end_lr),
        "num_it": int(lf.num_it),
        "mode": str(lf.mode),
        "smooth_beta": float(lf.smooth_beta),
        "stop_div": bool(lf.stop_div),
        "diverge_threshold": float(lf.diverge_threshold),
    }


def format_table(result: LRFindResult, chosen: str | None = None) -> str:
    s = result.settings
    head = f"LR range test: {len(result.lrs)}/{result.num_it} steps"
    if s:
        head += f", lr {s['start_lr']:g} -> {s['end_lr']:g} ({s['mode']})"
    if result.stopped_early:
        head += f", stopped early ({result.stop_reason})"
    lines = [head, f"{'suggestion':<12}{'lr':>12}"]
    for name, lr in result.suggestions.items():
        value = f"{lr:.3e}" if lr is not None else "n/a"
        lines.append(f"{name:<12}{value:>12}" + ("  <- chosen" if name == chosen else ""))
    return "\n".join(lines)


def plot_result(result: LRFindResult, path: str | Path, chosen: str | None = None) -> None:
    """Loss vs lr on a log axis (smoothed, raw faintly), each suggestion marked and labelled."""
    from matplotlib.figure import Figure  # lazily; Figure needs no pyplot or global backend

    lrs = np.asarray(result.lrs, dtype=float)
    raw = np.asarray(result.raw_losses, dtype=float)
    smooth = np.asarray(result.smoothed_losses, dtype=float)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(lrs, raw, color="0.75", linewidth=0.8, label="loss")
    ax.plot(lrs, smooth, color="C0", linewidth=2, label="smoothed loss")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    title = "LR range test" + (
        f" (stopped early: {result.stop_reason})" if result.stopped_early else ""
    )
    ax.set_title(title)
    # The suggestion window sets the y range, so a diverged tail does not flatten the curve.
    win_lrs, win_losses = suggestion_window(result.lrs, result.smoothed_losses, result.num_it)
    if len(win_losses):
        lo, hi = float(win_losses.min()), float(win_losses.max())
        pad = 0.1 * (hi - lo) or 0.1 * abs(hi) or 0.1
        ax.set_ylim(lo - pad, hi + pad)
    markers = {"valley": "o", "slide": "s", "minimum": "v", "steep": "^"}
    for i, (name, lr) in enumerate(result.suggestions.items()):
        if lr is None or not len(win_lrs):
            continue
        y = float(np.interp(np.log10(lr), np.log10(win_lrs), win_losses))
        label = f"{name}: {lr:.2e}" + (" (lr at the lowest loss / 10)" if name == "minimum" else "")
        label += " (chosen)" if name == chosen else ""
        ax.plot([lr], [y], markers[name], color=f"C{i + 1}", markersize=9, label=label, zorder=3)
        ax.annotate(name, (lr, y), textcoords="offset points", xytext=(6, 6), color=f"C{i + 1}")
    ax.legend(loc="best")
    fig.savefig(path, dpi=120)


def save_result(result: LRFindResult, out_dir: str | Path, chosen: str | None = None) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lr_find.json").write_text(json.dumps(result.to_json(chosen), indent=2) + "\n")
    plot_result(result, out / "lr_find.png", chosen)


def set_peak_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Make `lr` the optimizer's lr: every group's lr (and `initial_lr`, if a scheduler already
    stamped one) keeps its ratio to the optimizer's own lr, so layer-wise ratios survive.
    Call it before building the schedule: a built schedule keeps the peaks it read.

    lr * (group/base) rather than group * (lr/base): a group at the base lr gets exactly `lr`,
    so `optimizer.lr=auto` trains bit for bit like `optimizer.lr=<the found value>`.
    """
    base = float(optimizer.defaults["lr"])
    optimizer.defaults["lr"] = lr
    for group in optimizer.param_groups:
        group["lr"] = lr * (float(group["lr"]) / base)
        if "initial_lr" in group:
            group["initial_lr"] = lr * (float(group["initial_lr"]) / base)


def is_auto_lr(cfg: DictConfig) -> bool:
    return cfg.optimizer.get("lr") == "auto"


# --- entry points: find_lr.py and optimizer.lr=auto -------------------------------------------


def loss_step(train_step: Callable[[list[Any]], tuple[torch.Tensor, torch.Tensor, int]]) -> StepFn:
    """Adapt `lrlab.training.TrainStep` (returns loss sum, correct, samples) to a mean-loss step."""

    def step(batches: list[Any]) -> torch.Tensor:
        loss_sum, _, n = train_step(batches)
        return loss_sum / n

    return step


def run_range_test(
    cfg: DictConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader,
    train_step,
    train_mode: Callable[[], Any] | None = None,
) -> LRFindResult:
    """The range test with `cfg.lr_find` settings over `train_step` (a TrainStep: autocast, grad
    scaling, clipping), `trainer.accumulate_grad_batches` micro-batches per step."""
    kwargs = range_test_kwargs(cfg.lr_find)
    result = range_test(
        model,
        optimizer,
        train_loader,
        loss_step(train_step),
        accumulate_grad_batches=int(cfg.trainer.accumulate_grad_batches),
        extra_state=[train_step.scaler],  # fp16 loss scale moves during the test
        train_mode=train_mode,
        **kwargs,
    )
    result.settings = {
        **kwargs,
        "accumulate_grad_batches": int(cfg.trainer.accumulate_grad_batches),
        "precision": str(cfg.trainer.precision),
        "skip_start": kwargs["num_it"] // 10,
        "skip_end": SKIP_END,
    }
    return result


def run_from_config(cfg: DictConfig) -> dict[str, Any]:
    """`find_lr.py`: build data, model and optimizer as train.py would, run the range test, print
    the suggestions and write lr_find.json/png into `cfg.paths.output_dir`."""
    from lrlab.loggers import build_trackers
    from lrlab.training import validate_config

    validate_config(cfg)
    validate_lr_find_cfg(cfg.lr_find)
    trackers = build_trackers(cfg, job_type="find_lr")
    try:
        summary = _find_lr(cfg)
    except BaseException:
        for tracker in trackers:
            tracker.finish("failed")
        raise
    out = Path(cfg.paths.output_dir)
    for tracker in trackers:
        tracker.log_image("lr_find", out / "lr_find.png")
        tracker.log_summary(summary)
        tracker.finish("completed")
    return summary


def _find_lr(cfg: DictConfig) -> dict[str, Any]:
    from lrlab.training import build_components

    # As train.py builds them: the test runs on the model as its first epoch trains it
    # (model.freeze), with the optimizer's own lr setting only the ratios between groups.
    c = build_components(cfg)
    result = run_range_test(
        cfg, c.model, c.optimizer, c.data.train_loader, c.step_fn, c.freezer.train_mode
    )
    chosen = str(cfg.lr_find.suggestion)
    save_result(result, cfg.paths.output_dir, chosen)
    print(format_table(result, chosen))
    print(f"written: {Path(cfg.paths.output_dir) / 'lr_find.json'} and lr_find.png")
    return result.to_json(chosen)


def resolve_auto_lr(
    cfg: DictConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader,
    train_step,
    run_dir: str | Path,
    train_mode: Callable[[], Any] | None = None,
) -> tuple[float, dict[str, Any]]:
    """`optimizer.lr=auto`: run the range test on this model, data and optimizer (built with
    `build_optimizer(cfg, model, lr=PLACEHOLDER_LR)`), make the `lr_find.suggestion` pick the optimizer's lr (every
    group scaled alike) and write lr_find.json/png into `run_dir`. Model, optimizer state, RNG
    and shuffling are untouched, so training then starts from the same initial weights.

    Call it before building the scheduler, which then takes the found lr as its peak (and CLR
    its lower bound as peak/6 unless `scheduler.base_lr` is set). Returns the lr and the
    summary entry `{"suggestion": name, "lr": value}`.
    """
    validate_lr_find_cfg(cfg.lr_find)
    chosen = str(cfg.lr_find.suggestion)
    result = run_range_test(cfg, model, optimizer, train_loader, train_step, train_mode)
    save_result(result, run_dir, chosen)
    log.info("%s", format_table(result, chosen))
    lr = result.suggestions[chosen]
    if lr is None:
        raise ConfigError(
            f"lr_find.suggestion={chosen!r} found no lr: the range test kept "
            f"{len(suggestion_window(result.lrs, result.smoothed_losses, result.num_it)[0])} "
            f"usable points of {len(result.lrs)} (stopped early: {result.stop_reason}); raise "
            f"lr_find.num_it, lower lr_find.end_lr, or pick another lr_find.suggestion "
            f"(see {Path(run_dir) / 'lr_find.png'})"
        )
    set_peak_lr(optimizer, lr)
    log.info("optimizer.lr=auto: using the %s suggestion, lr %.3e", chosen, lr)
    return lr, {"suggestion": chosen, "lr": lr}


class LRFindSweepReport(SweepReport):
    """`find_lr.py -m`: one line of suggestions per job from its lr_find.json; exit 1 if any
    job wrote none (the policy of `lrlab.entry.SweepReport`)."""

    def describe(self, job_dir: Path) -> tuple[str, bool]:
        found = job_dir / "lr_find.json"
        if not found.is_file():
            return "failed (no lr_find.json)", False
        suggestions = json.loads(found.read_text())["suggestions"]
        return "  ".join(
            f"{k} {v:.2e}" if v is not None else f"{k} n/a" for k, v in suggestions.items()
        ), True
