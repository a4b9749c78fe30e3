"""Run records and experiment trackers.

Every run writes its local records (`records.RunRecorder`: metrics.jsonl, summary.json).
Trackers add to them, one per entry of the `logger` group: `logger=csv` (`csv_log`),
`logger=wandb` (`wandb_tracker`), `logger=tensorboard` (`tensorboard_tracker`), `logger=mlflow`, or several
(`logger=[csv,wandb]`). Trackers never raise into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from lrlab.parallel import is_main_process
from lrlab.tracking.base import Tracker
from lrlab.tracking.csv_log import CsvConfig
from lrlab.tracking.mlflow_tracker import MlflowConfig
from lrlab.tracking.records import RunRecorder, read_jsonl
from lrlab.tracking.tensorboard_tracker import TensorBoardConfig
from lrlab.tracking.wandb_tracker import WandbConfig

__all__ = ["LoggerConfig", "RunRecorder", "Tracker", "build_trackers", "read_jsonl"]


@dataclass
class LoggerConfig:
    """`logger:`: the trackers beside the local records (`logger=local` selects none)."""

    csv: CsvConfig | None = None
    wandb: WandbConfig | None = None
    tensorboard: TensorBoardConfig | None = None
    mlflow: MlflowConfig | None = None


def build_trackers(
    logger: LoggerConfig, run_dir: Path, run_config: DictConfig, job_type: str = "train"
) -> list[Tracker]:
    """One tracker per configured logger (`logger`: the checked `cfg.logger`, as
    `OmegaConf.to_object` makes it); `run_config` is the run's whole config (W&B and MLflow log
    it), `job_type` the kind of run (`train`, `find_lr`)."""
    trackers: list[Tracker] = []
    if not is_main_process():  # a data parallel run has one W&B run, one CSV: rank 0's
        return trackers
    if logger.csv is not None:
        from lrlab.tracking.csv_log import CsvTracker

        trackers.append(CsvTracker(run_dir / logger.csv.filename))
    if logger.wandb is not None:
        from lrlab.tracking.wandb_tracker import WandbTracker

        trackers.append(WandbTracker(logger.wandb, run_config, run_dir, job_type))
    if logger.tensorboard is not None:
        from lrlab.tracking.tensorboard_tracker import TensorBoardTracker

        tb = logger.tensorboard
        tags = list(run_config.get("tags") or [])
        trackers.append(TensorBoardTracker(run_dir / tb.subdir, tb.flush_secs, tags))
    if logger.mlflow is not None:
        from lrlab.tracking.mlflow_tracker import MlflowTracker

        trackers.append(MlflowTracker(logger.mlflow, run_config, run_dir))
    return trackers
