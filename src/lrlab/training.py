"""The training loop: build everything from the config, train, validate, record.

Read top to bottom: `train(cfg)` sets up the run, `fit()` runs epochs, `TrainStep` does one
optimizer step (autocast, gradient accumulation, clipping, grad scaling) and is shared with
the LR finder.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from lrlab import lr_finder
from lrlab.data import DataBundle, build_data
from lrlab.errors import ConfigError
from lrlab.loggers import build_trackers
from lrlab.models import build_model
from lrlab.models.freezing import Freezer
from lrlab.optim import build_optimizer, group_lrs
from lrlab.records import METRICS_FILE, RunRecorder, read_jsonl
from lrlab.schedules import build_scheduler, group_momentum, scheduler_params
from lrlab.utils import package_versions, rng_state, seed_everything, select_device, set_rng_state

log = logging.getLogger(__name__)

PRECISIONS = {"32": None, "16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}
Batch = tuple[torch.Tensor, torch.Tensor]


class Diverged(Exception):
    """The training loss became NaN/inf or exceeded `trainer.divergence_threshold`."""


def validate_config(cfg: DictConfig) -> None:
    """Catch bad values before any work starts, with a message naming the key."""
    t = cfg.trainer
    lr = cfg.optimizer.get("lr")
    if lr != "auto" and (not isinstance(lr, int | float) or lr <= 0):
        raise ConfigError(f"optimizer.lr must be a number > 0 (or 'auto'), got {lr!r}")
    if lr == "auto":
        lr_finder.validate_lr_find_cfg(cfg.lr_find)
    scheduler_params(cfg.scheduler, None if lr == "auto" else lr)

    def count(value: Any, least: int) -> bool:  # bools are ints in Python: refuse them
        return isinstance(value, int) and not isinstance(value, bool) and value >= least

    checks = [
        (count(t.epochs, 1), f"trainer.epochs must be an integer >= 1, got {t.epochs!r}"),
        (cfg.data.batch_size >= 1, f"data.batch_size must be >= 1, got {cfg.data.batch_size}"),
        (
            t.accumulate_grad_batches >= 1,
            f"trainer.accumulate_grad_batches must be >= 1, got {t.accumulate_grad_batches}",
        ),
        (
            t.log_every_n_steps >= 1,
            f"trainer.log_every_n_steps must be >= 1, got {t.log_every_n_steps}",
        ),
        (
            str(t.precision) in PRECISIONS,
            f"trainer.precision={t.precision!r} is not one of {sorted(PRECISIONS)}",
        ),
        (
            t.grad_clip is None or t.grad_clip > 0,
            f"trainer.grad_clip must be > 0 or null, got {t.grad_clip}",
        ),
        (t.num_workers >= 0, f"trainer.num_workers must be >= 0, got {t.num_workers}"),
        (
            t.num_threads is None or count(t.num_threads, 1),
            f"trainer.num_threads must be null or an integer >= 1, got {t.num_threads!r}",
        ),
        (
            t.limit_train_batches is None or count(t.limit_train_batches, 1),
            f"trainer.limit_train_batches must be null or an integer >= 1, got {t.limit_train_batches!r}",
        ),
        (
            t.limit_val_batches is None or count(t.limit_val_batches, 1),
            f"trainer.limit_val_batches must be null or an integer >= 1, got {t.limit_val_batches!r}",
        ),
        (
            count(t.overfit_batches, 0),
            f"trainer.overfit_batches must be an integer >= 0, got {t.overfit_batches!r}",
        ),
        (
            isinstance(t.divergence_threshold, int | float) and t.divergence_threshold > 0,
            f"trainer.divergence_threshold must be > 0, got {t.divergence_threshold!r}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


class TrainStep:
    """One optimizer step over a group of micro-batches (gradient accumulation).

    Returns on-device sums (loss * samples, correct predictions) and the sample count, so the
    caller decides when to synchronise with the host.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        precision: str = "32",
        grad_clip: float | None = None,
    ) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        self.loss_fn = nn.CrossEntropyLoss()
        self.autocast_dtype = PRECISIONS[str(precision)]
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

    def __call__(self, batches: Sequence[Batch]) -> tuple[torch.Tensor, torch.Tensor, int]:
        n_total = sum(len(y) for _, y in batches)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for x, y in batches:
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            with self.autocast():
                logits = self.model(x)
                loss = self.loss_fn(logits, y)
            # Weight by samples so a short last group counts each sample like any other.
            self.scaler.scale(loss * (len(y) / n_total)).backward()
            loss_sum += loss.detach().float() * len(y)
            correct += (logits.argmax(1) == y).sum()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, correct, n_total


def grouped(batches: Iterable[Batch], size: int) -> Iterator[list[Batch]]:
    """Consecutive groups of `size` batches; the last group may be shorter."""
    it = iter(batches)
    while group := list(itertools.islice(it, size)):
        yield group


def optimizer_steps_per_epoch(num_batches: int, accumulate: int) -> int:
    return math.ceil(num_batches / accumulate)


def group_hparams(optimizer: torch.optim.Optimizer) -> tuple[list[float], float | None]:
    """Every group's lr, and group 0's momentum (SGD/RMSprop) or beta1 (Adam family)."""
    return group_lrs(optimizer), group_momentum(optimizer.param_groups[0])


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Iterable[Batch], step: TrainStep) -> tuple[float, float]:
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
    return loss_sum.item() / count, correct.item() / count


def progress_bar(cfg: DictConfig, total: int, desc: str):
    from tqdm.auto import tqdm

    enabled = cfg.trainer.progress_bar and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=not enabled)


def current_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job and return its summary (also written to `summary.json`)."""
    run_dir = Path(cfg.paths.output_dir)
    start = time.perf_counter()
    summary: dict[str, Any] = {
        "status": "failed",
        "error": None,
        "final_val_acc": None,
        "best_val_acc": None,
        "best_epoch": None,
        "epochs_completed": 0,
        "steps": 0,
        "wall_time_s": 0.0,
        "seed": cfg.seed,
        "overrides": current_overrides(),
        "versions": package_versions(),
    }
    recorder = RunRecorder(run_dir)
    try:
        validate_config(cfg)
        recorder.trackers = build_trackers(cfg)
        fit(cfg, recorder, summary, start)
        summary["status"] = "completed"
    except Diverged as e:
        summary.update(status="diverged", error=str(e))
        log.warning("stopped: %s", e)
    except KeyboardInterrupt:
        summary.update(status="interrupted", error="KeyboardInterrupt")
        raise
    except Exception as e:
        summary.update(status="failed", error=f"{type(e).__name__}: {e}")
        raise
    finally:
        summary["wall_time_s"] = round(time.perf_counter() - start, 3)
        recorder.close(summary)
    return summary


@dataclass
class Components:
    device: torch.device
    data: DataBundle
    model: nn.Module
    freezer: Freezer
    optimizer: torch.optim.Optimizer
    step_fn: TrainStep


def build_components(cfg: DictConfig) -> Components:
    """Seeded data, model, optimizer and step function exactly as training builds them (the
    LR finder and the schedule preview use this too). With `optimizer.lr=auto` the optimizer
    gets a placeholder lr that the LR range test replaces."""
    t = cfg.trainer
    seed_everything(cfg.seed)
    # Set both ways: a sequential sweep runs every job in one process.
    torch.use_deterministic_algorithms(bool(t.deterministic), warn_only=True)
    if t.num_threads:  # e.g. 1 per job when several sweep jobs share a machine's cores
        torch.set_num_threads(t.num_threads)
    device = select_device(t.device)
    data = build_data(cfg)
    model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size).to(device)
    if t.channels_last:  # NHWC convolutions: 1.3x faster flowers epochs on CPU (benchmarks/)
        model = model.to(memory_format=torch.channels_last)
    # model.freeze / fine_tune: frozen groups keep requires_grad=False but stay in the optimizer.
    freezer = Freezer.from_cfg(cfg.model, model, epochs=t.epochs)
    freezer.apply(0)  # the LR range test, like fastai's, runs on the initially frozen model
    auto_lr = lr_finder.is_auto_lr(cfg)
    optimizer = build_optimizer(cfg, model, lr=lr_finder.PLACEHOLDER_LR if auto_lr else None)
    step_fn = TrainStep(model, optimizer, device, str(t.precision), t.grad_clip)
    return Components(device, data, model, freezer, optimizer, step_fn)


def fit(cfg: DictConfig, recorder: RunRecorder, summary: dict[str, Any], start: float) -> None:
    t = cfg.trainer
    checkpoint = read_checkpoint(Path(t.resume), t.epochs) if t.resume else None
    c = build_components(cfg)
    device, data, model, freezer, optimizer, step_fn = (
        c.device, c.data, c.model, c.freezer, c.optimizer, c.step_fn
    )  # fmt: skip
    auto_lr = lr_finder.is_auto_lr(cfg)
    summary["lr_group_names"] = [
        g.get("name", str(i)) for i, g in enumerate(optimizer.param_groups)
    ]
    if auto_lr and checkpoint is not None:  # a resumed run reuses the lr it found
        if not checkpoint.get("lr_find"):
            raise ConfigError(
                "optimizer.lr=auto: the checkpoint's run set its lr by hand; resume with it"
            )
        summary["lr_find"] = checkpoint["lr_find"]
        lr_finder.set_peak_lr(optimizer, summary["lr_find"]["lr"])
    elif auto_lr:  # the range test restores model, optimizer and RNG exactly afterwards
        _, summary["lr_find"] = lr_finder.resolve_auto_lr(
            cfg, model, optimizer, data.train_loader, step_fn, recorder.run_dir, freezer.train_mode
        )
        recorder.log_image("lr_find", recorder.run_dir / "lr_find.png")

    train_batches, val_batches = epoch_batches(cfg, data)
    num_batches = len(train_batches)
    steps_per_epoch = optimizer_steps_per_epoch(num_batches, t.accumulate_grad_batches)
    # The schedule keeps the length it was planned for: a resumed run with more epochs holds
    # its final value past the plan instead of jumping to a rescaled curve.
    planned_epochs = checkpoint["planned_epochs"] if checkpoint else t.epochs
    scheduler = build_scheduler(cfg.scheduler, optimizer, steps_per_epoch, planned_epochs)

    first_epoch, step = 0, 0
    if checkpoint is not None:
        if checkpoint["steps_per_epoch"] != steps_per_epoch:
            raise ConfigError(
                f"trainer.resume: the checkpoint's run took {checkpoint['steps_per_epoch']} "
                f"optimizer steps per epoch, this config {steps_per_epoch}: resume with the "
                "same data, batch size and accumulate_grad_batches"
            )
        first_epoch, step = restore_checkpoint(
            checkpoint, model, optimizer, scheduler, step_fn, data, summary
        )
        recorder.copy_rows(parent_rows(Path(t.resume), first_epoch, step))
    log.info(
        "training %s on %s (%d train batches, %d optimizer steps/epoch) on %s",
        cfg.model.name,
        cfg.data.name,
        num_batches,
        steps_per_epoch,
        device,
    )

    for epoch in range(first_epoch, t.epochs):
        epoch_start = time.perf_counter()
        if freezer.apply(epoch) and epoch > 0:  # fine_tune: the schedule simply goes on
            log.info("fine_tune: all layer groups train from epoch %d (step %d)", epoch + 1, step)
        freezer.train_mode()  # model.train(), but frozen BatchNorm layers stay in eval mode
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        with progress_bar(cfg, num_batches, f"epoch {epoch + 1}/{t.epochs}") as bar:
            for i, group in enumerate(grouped(train_batches, t.accumulate_grad_batches)):
                step += 1
                log_now = step % t.log_every_n_steps == 0
                last_lr = optimizer.param_groups[0]["lr"]  # what this step trains with
                if log_now:
                    lrs, momentum = group_hparams(optimizer)
                step_loss, step_correct, n = step_fn(group)
                scheduler.step()
                loss_sum += step_loss
                correct += step_correct
                seen += n
                bar.update(len(group))
                if log_now:
                    loss = (step_loss / n).item()  # the only per-log-interval host sync
                    check_divergence(loss, t.divergence_threshold, step)
                    recorder.log(
                        {
                            "type": "step",
                            "step": step,
                            "epoch": round(epoch + (i + 1) / steps_per_epoch, 6),
                            "train_loss": loss,
                            "lr": lrs[0],
                            "lr_groups": lrs,
                            "momentum": momentum,
                        }
                    )
                    rate = seen / (time.perf_counter() - epoch_start)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lrs[0]:.2e}", img_s=f"{rate:.0f}")

        train_loss = loss_sum.item() / seen
        check_divergence(train_loss, t.divergence_threshold, step)
        val_loss, val_acc = evaluate(model, val_batches, step_fn)
        scheduler.epoch_end(val_loss)
        row = {
            "type": "epoch",
            "epoch": epoch + 1,
            "step": step,
            "train_loss": train_loss,
            "train_acc": correct.item() / seen,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "epoch_time_s": round(time.perf_counter() - epoch_start, 3),
            "lr": last_lr,  # the epoch's last step's lr
        }
        recorder.log(row)
        log.info(
            "epoch %d/%d  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  (%.1fs)",
            epoch + 1,
            t.epochs,
            train_loss,
            row["train_acc"],
            val_loss,
            val_acc,
            row["epoch_time_s"],
        )
        if summary["best_val_acc"] is None or val_acc > summary["best_val_acc"]:
            summary.update(best_val_acc=val_acc, best_epoch=epoch + 1)
        summary.update(
            final_val_acc=val_acc,
            final_val_loss=val_loss,
            epochs_completed=epoch + 1,
            steps=step,
            status="running",
            wall_time_s=round(time.perf_counter() - start, 3),
        )
        recorder.write_summary(summary)  # a killed run still says how far it got
        if t.checkpoint:
            plan = {"planned_epochs": planned_epochs, "steps_per_epoch": steps_per_epoch}
            save_checkpoint(
                recorder.run_dir / "checkpoints" / "last.ckpt",
                {"epoch": epoch + 1, "step": step, **plan},
                model, optimizer, scheduler, step_fn, data, summary,
            )  # fmt: skip


def epoch_batches(cfg: DictConfig, data: DataBundle) -> tuple[Iterable[Batch], Iterable[Batch]]:
    """What one epoch iterates over: the loaders, a prefix of them, or fixed batches (overfit)."""
    t = cfg.trainer
    if t.overfit_batches:
        fixed = list(itertools.islice(data.train_loader, t.overfit_batches))
        return fixed, fixed
    train: Iterable[Batch] = data.train_loader
    val: Iterable[Batch] = data.val_loader
    if t.limit_train_batches:
        train = Limited(data.train_loader, t.limit_train_batches)
    if t.limit_val_batches:
        val = Limited(data.val_loader, t.limit_val_batches)
    return train, val


class Limited:
    """The first `n` batches of a loader, re-iterable every epoch, with a length."""

    def __init__(self, loader: Iterable[Batch], n: int) -> None:
        self.loader, self.n = loader, min(n, len(loader))  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        return itertools.islice(self.loader, self.n)

    def __len__(self) -> int:
        return self.n


def check_divergence(loss: float, threshold: float, step: int) -> None:
    if not math.isfinite(loss) or loss > threshold:
        raise Diverged(f"training loss {loss} at step {step} (threshold {threshold})")


def save_checkpoint(
    path: Path, position: dict[str, int], model, optimizer, scheduler, step_fn, data, summary
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        **position,  # epoch, step, and the schedule's plan (planned_epochs, steps_per_epoch)
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": step_fn.scaler.state_dict(),
        "rng": rng_state(),
        "loader_rng": data.train_loader.generator.get_state(),
        "best_val_acc": summary["best_val_acc"],
        "best_epoch": summary["best_epoch"],
        "lr_find": summary.get("lr_find"),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash mid-save keeps the previous checkpoint


def read_checkpoint(path: Path, epochs: int) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"trainer.resume={str(path)!r} is not a checkpoint file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if epochs <= state["epoch"]:
        raise ConfigError(
            f"trainer.epochs={epochs}: the checkpoint has {state['epoch']} epochs already; "
            "resume with more"
        )
    return state


def restore_checkpoint(
    state, model, optimizer, scheduler, step_fn, data, summary
) -> tuple[int, int]:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    step_fn.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    data.train_loader.generator.set_state(state["loader_rng"])
    summary.update(
        best_val_acc=state["best_val_acc"],
        best_epoch=state["best_epoch"],
        epochs_completed=state["epoch"],
        steps=state["step"],
    )
    log.info("resumed at epoch %d, step %d", state["epoch"], state["step"])
    return state["epoch"], state["step"]


def parent_rows(checkpoint: Path, epoch: int, step: int) -> list[dict[str, Any]]:
    """The resumed run's records up to the checkpoint, so the new run dir holds the whole run."""
    metrics = checkpoint.parent.parent / METRICS_FILE  # <run dir>/checkpoints/last.ckpt
    if not metrics.is_file():
        return []
    return [
        row
        for row in read_jsonl(metrics)
        if (row["type"] == "step" and row["step"] <= step)
        or (row["type"] == "epoch" and row["epoch"] <= epoch)
    ]
