"""logger=mlflow: the run records as an MLflow run (read back with MLflow's client), continued
by a resumed run."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lrlab.tasks.train import train
from lrlab.tracking import read_jsonl
from tests.helpers import compose_cfg

mlflow = pytest.importorskip("mlflow")


def client(run_dir: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{run_dir / 'mlflow.db'}")


@pytest.mark.slow  # MLflow's import and SQLite set-up take ~20 s on a busy CPU
def test_mlflow_run_holds_the_run_records(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_cfg(
        ["logger=mlflow", "trainer.epochs=2", "trainer.log_every_n_steps=5", "tags=[baseline]",
         "trainer.checkpoint=false"],
        run_dir,
    )  # fmt: skip
    assert train(cfg)["status"] == "completed"
    run_id = (run_dir / "mlflow_run_id").read_text().strip()
    c = client(run_dir)
    run = c.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["tag.baseline"] == "1"
    assert run.data.params["optimizer._target_"] == "torch.optim.Adam"
    rows = read_jsonl(run_dir / "metrics.jsonl")
    steps = [r for r in rows if r["type"] == "step"]
    epochs = [r for r in rows if r["type"] == "epoch"]

    def history(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in c.get_metric_history(run_id, key))

    assert history("lr/group_1") == [(r["step"], pytest.approx(r["lr_groups"][1])) for r in steps]
    assert history("val/acc") == [(r["step"], pytest.approx(r["val_acc"])) for r in epochs]


def test_a_resumed_run_continues_its_mlflow_run(tmp_path):
    from lrlab.tracking.mlflow_tracker import MlflowConfig, MlflowTracker

    mcfg = MlflowConfig(tracking_uri=None, experiment="e", run_name=None)
    run_cfg = OmegaConf.create({"tags": [], "seed": 1})
    first = MlflowTracker(mcfg, run_cfg, tmp_path)
    first.log_metrics({"type": "step", "step": 1, "train_loss": 1.0})
    first.finish("interrupted")
    again = MlflowTracker(mcfg, run_cfg, tmp_path)
    again.log_metrics({"type": "step", "step": 2, "train_loss": 0.5})
    again.finish("completed")
    runs = client(tmp_path).search_runs(
        [client(tmp_path).get_experiment_by_name("e").experiment_id]
    )
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    losses = client(tmp_path).get_metric_history(runs[0].info.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in losses) == [(1, 1.0), (2, 0.5)]
