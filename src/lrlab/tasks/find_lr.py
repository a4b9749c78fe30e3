"""The `find_lr` task (`python find_lr.py`): the LR range test on the run's model and data,
its suggestions printed and written to lr_find.json / lr_find.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrlab.lr_finder import format_table, save_result
from lrlab.tasks.auto_lr import run_range_test
from lrlab.tasks.build import build_components
from lrlab.tasks.config import check_config
from lrlab.tracking import build_trackers


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
