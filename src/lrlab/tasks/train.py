"""The `train` task: plan the start, build the run, train it with its callbacks, record it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrlab.callbacks import Checkpointing, Divergence, Freezing, ProgressBar, RunRecords
from lrlab.data.loaders import stop_worker_processes
from lrlab.engine.checkpoint import Checkpointer, restore
from lrlab.engine.distributed import attach
from lrlab.engine.loop import fit
from lrlab.engine.signals import StopSignals
from lrlab.engine.state import TrainState
from lrlab.errors import ConfigError, RunDirError
from lrlab.optim.optimizer import set_peak_lr
from lrlab.parallel import world_size
from lrlab.tasks.build import build_components, is_auto_lr, trained_augment
from lrlab.tasks.config import check_config
from lrlab.tasks.find_lr import find_auto_lr
from lrlab.tasks.resume import Start, describe, plan_start
from lrlab.tasks.run_plan import plan_run
from lrlab.tracking import RunRecorder, build_trackers, read_jsonl
from lrlab.tracking.records import METRICS_FILE, SUMMARY_FILE, read_json, rows_until
from lrlab.utils import instantiate, package_versions

log = logging.getLogger(__name__)


def resolved(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def prepare(cfg: DictConfig) -> Start:
    """Where this run starts; refuses (ConfigError) before anything is written."""
    run_dir = Path(cfg.paths.output_dir)
    start = plan_start(run_dir, cfg.trainer.resume, cfg.trainer.epochs, resolved(cfg))
    if start.in_place and describe(run_dir):
        check_config(cfg)  # a bad value must not touch the records of the run it continues
    return start


def train(cfg: DictConfig, start: Start | None = None, overrides: list[str] = ()) -> dict[str, Any]:
    """Run one training job and return its summary (also written to `summary.json`)."""
    started = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    start = start or prepare(cfg)
    if start.finished is not None:
        log.info("%s: already %s; nothing to train", run_dir, start.finished.get("status"))
        return start.finished
    recorder = RunRecorder(run_dir)
    kept_rows = earlier_rows(start)
    if start.in_place or kept_rows:
        recorder.restart_from(kept_rows)
    summary: dict[str, Any] = {
        "seed": cfg.seed,
        "tags": list(cfg.get("tags") or []),
        "overrides": list(overrides),
        "augment": trained_augment(cfg),  # what the train split was augmented with
        "versions": package_versions(),
        # data.batch_size is per process; the batch one optimizer step averages over:
        "world_size": world_size(),
        "global_batch_size": cfg.data.batch_size
        * cfg.trainer.accumulate_grad_batches
        * world_size(),
    }
    if start.checkpoint is not None:
        ckpt = start.checkpoint
        summary["resumed_from"] = {"checkpoint": str(start.source), **position(ckpt)}
    records = RunRecords(recorder, summary, cfg.trainer.log_every_n_steps, started)
    with StopSignals() as signals:

        def check_stop() -> None:
            """A signal during set-up (data, W&B, the LR finder) stops the run there."""
            if signals.received is not None:
                raise StoppedBeforeTraining(*signals.received)

        try:
            check_config(cfg)
            recorder.trackers = build_trackers(OmegaConf.to_object(cfg.logger), run_dir, cfg)
            for tracker in recorder.trackers:
                if hasattr(tracker, "restart"):
                    tracker.restart(kept_rows)
            check_stop()
            state, callbacks = setup(cfg, start, records, run_dir, check_stop)
            attach(signals, state)  # data parallel: the processes also agree on stopping
            fit(state, callbacks)
        except StoppedBeforeTraining as stop:
            # Nothing trained since the start (or the checkpoint): nothing to checkpoint
            log.warning("%s before training started: nothing trained, nothing lost", stop.why)
            if start.checkpoint is not None and start.in_place:  # its results stay reported
                earlier = read_json(run_dir / SUMMARY_FILE) or {}
                records.summary.update({k: v for k, v in earlier.items() if k not in summary})
            records.close(stop.status, stop.why)
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt)
            error = (
                str(e) if isinstance(e, ConfigError | RunDirError) else f"{type(e).__name__}: {e}"
            )
            try:
                records.close("interrupted" if interrupted else "failed", error)
            except (OSError, RunDirError) as close_error:  # the disk is full: say why anyway
                log.error("summary.json could not say `failed`: %s", close_error)
            raise
        finally:
            stop_worker_processes()
    return records.summary


class StoppedBeforeTraining(Exception):
    """A stop signal that came before the first step: the run ends as `status`, untrained."""

    def __init__(self, status: str, why: str) -> None:
        super().__init__(why)
        self.status, self.why = status, why


def setup(
    cfg: DictConfig,
    start: Start,
    records: RunRecords,
    run_dir: Path,
    check_stop: Callable[[], None] = lambda: None,
) -> tuple[TrainState, list[Any]]:
    """The components, the lr (`optimizer.lr=auto`), the schedule, the callbacks, and the
    checkpoint's state when resuming. `check_stop()` raises at a stop signal: after building
    the components and at each step of the LR finder (after it, the first step's checkpoint
    keeps the lr it found)."""
    t = cfg.trainer
    ckpt = start.checkpoint
    c = build_components(cfg)
    check_stop()
    if c.lr_scaling is not None:
        records.summary["lr_scaling"] = c.lr_scaling
    if is_auto_lr(cfg):
        if ckpt is not None:  # a resumed run reuses the lr it found
            found = ckpt["callbacks"].get("RunRecords", {}).get("summary", {}).get("lr_find")
            if not found:
                raise ConfigError(
                    "optimizer.lr=auto: the checkpoint's run set its lr by hand; resume with it"
                )
            set_peak_lr(c.optimizer, found["lr"])
        else:  # the range test restores model, optimizer and RNG exactly afterwards
            found = find_auto_lr(
                OmegaConf.to_object(cfg.lr_find),
                c.model,
                c.optimizer,
                c.data.train_loader,
                c.step_fn,
                t.accumulate_grad_batches,
                run_dir,
                c.freezer.train_mode,
                check_stop,
            )
            records.recorder.log_image("lr_find", run_dir / "lr_find.png")
        records.summary["lr_find"] = found

    # The schedule keeps the length it was planned for: a resumed run with more epochs holds
    # its last planned value past the plan instead of jumping to a rescaled curve.
    planned = ckpt["planned_epochs"] if ckpt else t.epochs
    run_plan = plan_run(cfg, c, planned)  # batches (resizing), steps per epoch, optimizer switch
    records.summary.update(run_plan.summary)
    spe = run_plan.steps_per_epoch
    if ckpt is not None and ckpt["steps_per_epoch"] != spe:
        raise ConfigError(
            f"trainer.resume: the checkpoint's run took {ckpt['steps_per_epoch']} optimizer "
            f"steps per epoch, this config {spe}: resume with the same data, batch size and "
            "accumulate_grad_batches"
        )
    scheduler = run_plan.build_scheduler(cfg, c.optimizer)
    state = TrainState(
        model=c.model,
        scheduler=scheduler,
        step_fn=c.step_fn,
        train_batches=run_plan.train_batches,
        val_batches=run_plan.val_batches,
        epochs=t.epochs,
        steps_per_epoch=spe,
        epoch_steps=run_plan.epoch_steps,
        accumulate=t.accumulate_grad_batches,
        loader_generator=c.data.train_loader.generator,
        run_dir=run_dir,
    )
    callbacks: list[Any] = [
        Freezing(c.freezer),
        *run_plan.callbacks,  # Resizing, OptimizerSwitch
        ProgressBar(t.progress_bar, t.log_every_n_steps),
        Divergence(t.divergence_threshold, t.log_every_n_steps),
        records,
        *(instantiate(node, _convert_="all") for node in (cfg.callbacks or {}).values()),
    ]
    if t.checkpoint:
        callbacks.append(Checkpointing(t.checkpoint_every_n_steps))
    plan = {"planned_epochs": planned, "steps_per_epoch": spe}
    state.checkpointer = Checkpointer(resolved(cfg), plan, callbacks)
    if ckpt is not None:
        restore(state, ckpt, callbacks)
        log.info("resumed at epoch %d, step %d from %s", ckpt["epoch"], ckpt["step"], start.source)
    log.info(
        "training %s on %s (%d train batches, %d optimizer steps/epoch) on %s",
        cfg.model.get("name") or cfg.model._target_.rsplit(".", 1)[-1],
        cfg.data.get("name") or cfg.data._target_.rsplit(".", 1)[-1],
        len(run_plan.train_batches),
        spe,
        c.device,
    )
    return state, callbacks


def position(ckpt: dict[str, Any]) -> dict[str, int]:
    return {"epoch": ckpt["epoch"], "step": ckpt["step"], "step_in_epoch": ckpt["step_in_epoch"]}


def earlier_rows(start: Start) -> list[dict[str, Any]]:
    """The records of the run up to the checkpoint it continues from ([] for a fresh start)."""
    if start.checkpoint is None:
        return []
    source_dir = next((p.parent for p in start.source.parents if p.name == "checkpoints"), None)
    metrics = source_dir / METRICS_FILE if source_dir else None
    if metrics is None or not metrics.is_file():
        return []
    return rows_until(read_jsonl(metrics), start.checkpoint["epoch"], start.checkpoint["step"])
