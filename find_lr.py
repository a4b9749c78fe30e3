"""LR range test: `python find_lr.py` takes train.py's config groups and overrides
(`python find_lr.py optimizer=sgd data=flowers data.root=...`) and writes lr_find.json/png.
See the README's "LR finder" section."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lrlab.cli.errors import main as run_cli
from lrlab.cli.jobs import LRFindSweepReport, find_lr_job
from lrlab.tasks.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="find_lr")
def main(cfg: DictConfig) -> None:
    find_lr_job(cfg)


if __name__ == "__main__":
    run_cli(main, LRFindSweepReport)
