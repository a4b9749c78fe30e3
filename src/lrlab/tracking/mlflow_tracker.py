"""`logger=mlflow`: the scalars W&B and TensorBoard get, as an MLflow run (optional: `pip
install -e '.[mlflow]'`). The run logs to `logger.mlflow.tracking_uri` (default: a SQLite
store in the run dir, `mlflow.db`, artifacts in `mlartifacts/`; `mlflow ui
--backend-store-uri sqlite:///<run dir>/mlflow.db`); its params are the resolved config,
flattened. Its id is kept in the run dir, so a resumed run continues it.
Never raises into training."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig

from lrlab.errors import ConfigError
from lrlab.tracking.naming import config_dict, wandb_row
from lrlab.utils import json_safe

RUN_ID_FILE = "mlflow_run_id"


@dataclass
class MlflowConfig:
    tracking_uri: str | None = MISSING  # null: sqlite:///<run dir>/mlflow.db
    experiment: str = MISSING  # (the values: conf/logger/mlflow.yaml)
    run_name: str | None = MISSING  # null: MLflow's generated name


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"optimizer.lr": "0.001", ...}: MLflow params are flat strings of <= 6000 chars."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


class MlflowTracker:
    def __init__(self, mcfg: MlflowConfig, run_config: DictConfig, run_dir: Path) -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError(
                "logger=mlflow needs MLflow: pip install -e '.[mlflow]' (or pip install mlflow)"
            ) from None
        self.mlflow, self.run_dir, self.active = mlflow, run_dir, False
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            uri, name = mcfg.tracking_uri, mcfg.experiment
            # Default: a store of the run's own (MLflow 3 keeps its file store read-mostly)
            mlflow.set_tracking_uri(uri or f"sqlite:///{(run_dir / 'mlflow.db').resolve()}")
            if not uri and mlflow.get_experiment_by_name(name) is None:
                artifacts = (run_dir / "mlartifacts").resolve().as_uri()
                mlflow.create_experiment(name, artifact_location=artifacts)
            mlflow.set_experiment(name)
            id_file = run_dir / RUN_ID_FILE
            resumed = id_file.read_text().strip() if id_file.is_file() else None
            run = mlflow.start_run(run_id=resumed, run_name=mcfg.run_name)
            id_file.write_text(f"{run.info.run_id}\n")
            self.active = True
            tags = {f"tag.{t}": "1" for t in (run_config.get("tags") or [])}
            if not resumed:  # params are write-once in MLflow
                mlflow.log_params(flat(config_dict(run_config)))
            if tags:
                mlflow.set_tags(tags)
        except Exception as e:
            self._fail("could not start", e)

    def _fail(self, what: str, error: Exception) -> None:
        warnings.warn(
            f"MLflow logging disabled for this run: {what} ({type(error).__name__}: {error}); "
            "the local records continue",
            RuntimeWarning,
            stacklevel=3,
        )
        if self.active:
            self.active = False
            with contextlib.suppress(Exception):  # best effort: it is broken already
                self.mlflow.end_run(status="FAILED")

    def log_metrics(self, row: dict[str, Any]) -> None:
        if not self.active:
            return
        values = wandb_row(row)
        step = values.pop("trainer/step", None)
        try:
            self.mlflow.log_metrics(values, step=step)  # W&B's names: train/loss, lr/group_1
        except Exception as e:
            self._fail("log failed", e)

    def log_image(self, name: str, path: Path) -> None:
        if not self.active:
            return
        try:
            self.mlflow.log_artifact(str(path), artifact_path="plots")
        except Exception as e:
            self._fail("image log failed", e)

    def log_summary(self, summary: dict[str, Any]) -> None:
        if not self.active:
            return
        try:
            self.mlflow.log_dict(json_safe(summary), "summary.json")
        except Exception as e:
            self._fail("summary failed", e)

    def finish(self, status: str) -> None:
        if not self.active:
            return
        failed = status in ("failed", "interrupted", "preempted")
        try:
            self.mlflow.end_run(status="FAILED" if failed else "FINISHED")
        except Exception as e:
            self._fail("finish failed", e)
        self.active = False
