"""The LR range test as a task, on the run's own model, data, optimizer and training step:
`find_lr` (`python find_lr.py`: its suggestions printed and written to lr_find.json /
lr_find.png) and `find_auto_lr` (`optimizer.lr=auto`: a training run's peak lr, found first)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lrlab.engine.distributed import broadcast_from_main
from lrlab.engine.step import TrainStep
from lrlab.errors import ConfigError
from lrlab.lr_finder import LrFindConfig, LRFindResult, format_table, range_test, save_result
from lrlab.lr_finder.suggestions import SKIP_END, suggestion_window
from lrlab.optim.optimizer import set_peak_lr
from lrlab.parallel import is_main_process
from lrlab.tasks.build import build_components
from lrlab.tasks.config import check_config
from lrlab.tracking import build_trackers

log = logging.getLogger(__name__)


def run_range_test(
    settings: LrFindConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Any,
    train_step: TrainStep,
    accumulate: int,
    train_mode: Callable[[], Any] | None = None,
    check_stop: Callable[[], None] | None = None,
) -> LRFindResult:
    """The range test over `train_step` (autocast, grad scaling, clipping: what training does),
    `accumulate` micro-batches per step; everything is restored afterwards. `check_stop()`
    runs before each step: it may raise to end the test at once (a stop signal)."""
    kwargs = settings.range_test_kwargs()

    def mean_loss(batches: list[Any]) -> torch.Tensor:
        if check_stop is not None:
            check_stop()
        result = train_step(batches)
        return result.loss_sum / result.n

    result = range_test(
        model,
        optimizer,
        train_loader,
        mean_loss,
        accumulate_grad_batches=accumulate,
        extra_state=[train_step.scaler],  # fp16 loss scale moves during the test
        train_mode=train_mode,
        **kwargs,
    )
    result.settings = {
        **kwargs,
        "accumulate_grad_batches": accumulate,
        "precision": train_step.precision,
        "skip_start": kwargs["num_it"] // 10,
        "skip_end": SKIP_END,
    }
    return result


def find_auto_lr(
    settings: LrFindConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader: Any,
    train_step: TrainStep,
    accumulate: int,
    run_dir: Path,
    train_mode: Callable[[], Any] | None = None,
    check_stop: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run the range test, make the `settings.suggestion` pick the optimizer's lr (every group
    scaled alike), write lr_find.json/png into `run_dir`. Model, optimizer state, RNG and
    shuffling are untouched, so training then starts from the same initial weights.

    Call it before building the scheduler, which then takes the found lr as its peak (and CLR
    its lower bound as peak/6 unless `scheduler.base_lr` is set). Returns the summary entry
    `{"suggestion": name, "lr": value}`."""
    chosen = settings.suggestion
    result = run_range_test(
        settings, model, optimizer, train_loader, train_step, accumulate, train_mode, check_stop
    )
    if is_main_process():
        save_result(result, run_dir, chosen)
    log.info("%s", format_table(result, chosen))
    # Data parallel: every process ran the test on the same summed losses; rank 0's pick is used
    # by all, so no rounding difference can give the replicas different lrs.
    lr = broadcast_from_main(result.suggestions[chosen])
    if lr is None:
        usable = len(suggestion_window(result.lrs, result.smoothed_losses, result.num_it)[0])
        raise ConfigError(
            f"lr_find.suggestion={chosen!r} found no lr: the range test kept {usable} usable "
            f"points of {len(result.lrs)} (stopped early: {result.stop_reason}); raise "
            "lr_find.num_it, lower lr_find.end_lr, or pick another lr_find.suggestion "
            f"(see {Path(run_dir) / 'lr_find.png'})"
        )
    set_peak_lr(optimizer, lr)
    log.info("optimizer.lr=auto: using the %s suggestion, lr %.3e", chosen, lr)
    return {"suggestion": chosen, "lr": lr}


def find_lr(cfg: DictConfig) -> dict[str, Any]:
    """Build data, model and optimizer as train.py would (the test runs on the model as its
    first epoch trains it: model.freeze; the optimizer's own lr sets only the ratios between
    groups), run the range test and write its outputs into `cfg.paths.output_dir`."""
    check_config(cfg)
    settings = OmegaConf.to_object(cfg.lr_find)
    out = Path(cfg.paths.output_dir)
    trackers = build_trackers(OmegaConf.to_object(cfg.logger), out, cfg, job_type="find_lr")
    try:
        c = build_components(cfg)
        result = run_range_test(
            settings,
            c.model,
            c.optimizer,
            c.data.train_loader,
            c.step_fn,
            cfg.trainer.accumulate_grad_batches,
            c.freezer.train_mode,
        )
        save_result(result, out, settings.suggestion)
        print(format_table(result, settings.suggestion))
        print(f"written: {out / 'lr_find.json'} and lr_find.png")
        summary = result.to_json(settings.suggestion)
    except BaseException:
        for tracker in trackers:
            tracker.finish("failed")
        raise
    for tracker in trackers:
        tracker.log_image("lr_find", out / "lr_find.png")
        tracker.log_summary(summary)
        tracker.finish("completed")
    return summary
