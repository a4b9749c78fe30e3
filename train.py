"""Train one model: `python train.py optimizer=sgd scheduler=clr` (sweeps: `-m`). See README."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lrlab.cli.errors import main as run_cli
from lrlab.cli.jobs import train_job
from lrlab.tasks.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return train_job(cfg)


if __name__ == "__main__":
    run_cli(main)
