"""The optional callbacks in real (short) training runs on the digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lrlab.tasks.train import train
from lrlab.tracking import read_jsonl

FAST = [
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=2",
]


def rows_of(cfg, kind: str) -> list[dict]:
    rows = read_jsonl(Path(cfg.paths.output_dir) / "metrics.jsonl")
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows if r["type"] == kind]


def test_ema_changes_validation_only(make_cfg):
    """EMA averages the weights the run trains, so training is untouched and validation is
    run on the average: the step rows are identical, the epoch rows' val metrics are not."""
    plain = make_cfg(*FAST, "trainer.epochs=2", out="plain")
    ema = make_cfg(*FAST, "trainer.epochs=2", "callbacks=ema", "callbacks.ema.decay=0.5", out="ema")
    train(plain), train(ema)
    assert rows_of(plain, "step") == rows_of(ema, "step")
    val = [(r["val_loss"], r["val_acc"]) for r in rows_of(plain, "epoch")]
    val_ema = [(r["val_loss"], r["val_acc"]) for r in rows_of(ema, "epoch")]
    assert val != val_ema
    ckpt = torch.load(Path(ema.paths.output_dir, "checkpoints", "last.ckpt"), weights_only=True)
    assert "n_averaged" in ckpt["callbacks"]["EMA"]  # the average is checkpointed


def test_early_stopping_ends_the_run_as_completed(make_cfg):
    cfg = make_cfg(
        *FAST,
        "trainer.epochs=8",
        "optimizer.lr=1e-9",  # nothing improves
        "scheduler=constant",
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=2",
        "callbacks.early_stopping.monitor=val_loss",
        "callbacks.early_stopping.mode=min",
        "callbacks.early_stopping.min_delta=0.01",
    )
    summary = train(cfg)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    assert summary["stopped_early"].startswith("early_stopping: val_loss did not improve")
    assert [r["epoch"] for r in rows_of(cfg, "epoch")] == [1, 2, 3]


def test_best_checkpoint_holds_the_best_epoch(make_cfg):
    cfg = make_cfg(*FAST, "trainer.epochs=3", "callbacks=[best_checkpoint,early_stopping]")
    summary = train(cfg)
    best = torch.load(Path(cfg.paths.output_dir, "checkpoints", "best.ckpt"), weights_only=True)
    assert best["epoch"] == summary["best_epoch"] and best["step_in_epoch"] == 0
    assert best["callbacks"]["BestCheckpoint"]["top"][0][1] == summary["best_epoch"]


@pytest.mark.slow
def test_a_run_continues_from_its_best_checkpoint(make_cfg):
    """best.ckpt is a full checkpoint: trainer.resume=<it> continues from that epoch, with
    the records up to it copied over."""
    first = make_cfg(*FAST, "trainer.epochs=3", "callbacks=best_checkpoint", out="first")
    summary = train(first)
    best = Path(first.paths.output_dir, "checkpoints", "best.ckpt")
    more = make_cfg(
        *FAST, "trainer.epochs=4", "callbacks=best_checkpoint", f"trainer.resume={best}", out="more"
    )
    resumed = train(more)
    assert resumed["status"] == "completed" and resumed["epochs_completed"] == 4
    epochs = [r["epoch"] for r in rows_of(more, "epoch")]
    assert epochs == [*range(1, summary["best_epoch"] + 1), *range(summary["best_epoch"] + 1, 5)]
