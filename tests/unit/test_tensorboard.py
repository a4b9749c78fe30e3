"""logger=tensorboard writes the scalars W&B gets (read back with TensorBoard's own reader); a
resumed run continues its W&B run; tags reach summary.json and run-dir names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lrlab.tasks.train import train
from lrlab.tracking import read_jsonl
from tests.helpers import compose_cfg, logger_config

pytest.importorskip("tensorboard")


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_events_hold_the_run_records(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_cfg(
        ["logger=tensorboard", "trainer.epochs=2", "trainer.log_every_n_steps=5",
         "optimizer=sgd", "trainer.checkpoint=false"],
        run_dir,
    )  # fmt: skip
    assert train(cfg)["status"] == "completed"
    logged = scalars(run_dir / "tensorboard")
    rows = read_jsonl(run_dir / "metrics.jsonl")
    steps = [r for r in rows if r["type"] == "step"]
    epochs = [r for r in rows if r["type"] == "epoch"]
    # per-step lr of every param group and momentum, as in metrics.jsonl (and W&B)
    for group, _ in enumerate(steps[0]["lr_groups"]):
        expected = [(r["step"], r["lr_groups"][group]) for r in steps]
        assert logged[f"lr/group_{group}"] == [(s, pytest.approx(v)) for s, v in expected]
    assert logged["momentum"] == [(r["step"], pytest.approx(r["momentum"])) for r in steps]
    assert logged["train/loss"] == [(r["step"], pytest.approx(r["train_loss"])) for r in steps]
    for key, tag in (("val_acc", "val/acc"), ("val_loss", "val/loss"), ("train_acc", "train/acc")):
        assert logged[tag] == [(r["step"], pytest.approx(r[key])) for r in epochs]


def test_a_resumed_run_hides_the_events_past_its_checkpoint(tmp_path):
    from lrlab.tracking.tensorboard_tracker import TensorBoardTracker

    tracker = TensorBoardTracker(tmp_path / "tb", flush_secs=1)
    for step in (1, 2, 3, 4):
        tracker.log_metrics({"type": "step", "step": step, "train_loss": float(step)})
    tracker.finish("interrupted")
    resumed = TensorBoardTracker(tmp_path / "tb", flush_secs=1)
    resumed.restart([{"type": "step", "step": 2, "train_loss": 2.0}])
    resumed.log_metrics({"type": "step", "step": 3, "train_loss": 30.0})
    resumed.finish("completed")
    assert scalars(tmp_path / "tb")["train/loss"] == [(1, 1.0), (2, 2.0), (3, 30.0)]


class FakeRun:
    def __init__(self, run_id: str) -> None:
        self.id, self.dir = run_id, "unused"
        self.summary: dict = {}

    def define_metric(self, *args, **kwargs) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass


def test_a_resumed_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    from lrlab.tracking import wandb_tracker

    calls: list[dict] = []

    def fake_init(self, wandb, mode, kwargs):
        calls.append(kwargs)
        return FakeRun(kwargs.get("id", f"new{len(calls)}"))

    monkeypatch.setattr(wandb_tracker.WandbTracker, "_init", fake_init)
    monkeypatch.setattr(wandb_tracker, "resolve_wandb_mode", lambda mode: "online")
    wcfg = logger_config(wandb={"project": "p", "mode": "online"}).wandb
    run_cfg = OmegaConf.create({"tags": ["t"]})
    wandb_tracker.WandbTracker(wcfg, run_cfg, tmp_path / "run").finish("interrupted")
    assert "id" not in calls[0]
    assert (tmp_path / "run" / wandb_tracker.RUN_ID_FILE).read_text().strip() == "new1"
    wandb_tracker.WandbTracker(wcfg, run_cfg, tmp_path / "run").finish("completed")
    assert calls[1]["id"] == "new1" and calls[1]["resume"] == "allow"
    wandb_tracker.WandbTracker(wcfg, run_cfg, tmp_path / "other").finish("completed")
    assert "id" not in calls[2]  # another run dir: another W&B run


def test_tags_reach_summary_json_and_the_run_dir_name(tmp_path):
    from lrlab.tasks.config import join_tags

    cfg = compose_cfg(
        ["tags=[adam,short]", "trainer.epochs=1", "trainer.limit_train_batches=1",
         "trainer.checkpoint=false"],
        tmp_path / "run",
    )  # fmt: skip
    train(cfg)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["tags"] == ["adam", "short"]
    named = OmegaConf.create({"tags": ["a", "b/c"], "dir": "runs/${lrlab.join:${tags}}"})
    assert named.dir == "runs/a-b_c"
    assert join_tags([]) == "untagged"


def test_logger_tensorboard_composes_with_the_others(tmp_path):
    from lrlab.tracking import build_trackers
    from lrlab.tracking.csv_log import CsvTracker
    from lrlab.tracking.tensorboard_tracker import TensorBoardTracker

    cfg = compose_cfg(["logger=[csv,tensorboard]"], tmp_path / "run")
    trackers = build_trackers(OmegaConf.to_object(cfg.logger), tmp_path / "run", cfg)
    assert [type(t) for t in trackers] == [CsvTracker, TensorBoardTracker]
    for t in trackers:
        t.finish("completed")
