"""Evaluate a trained run: `python eval.py run_dir=outputs/runs/... checkpoint=best split=test`.
`mode=predict predict_dir=...` writes class probabilities of a folder of images. See
docs/evaluation.md."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lrlab.cli.errors import main as run_cli
from lrlab.cli.jobs import eval_job
from lrlab.tasks.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    eval_job(cfg)


if __name__ == "__main__":
    run_cli(main)
