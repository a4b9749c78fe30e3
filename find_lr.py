"""LR range test: `python find_lr.py` takes train.py's config groups and overrides
(`python find_lr.py optimizer=sgd data=flowers data.root=...`) and writes lr_find.json/png.
See docs/lr_finder.md."""

from __future__ import annotations

from lrlab.runtime import configure_process

configure_process()  # before anything loads torch: OpenMP reads its wait policy once

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from lrlab.cli.errors import main as run_cli  # noqa: E402
from lrlab.cli.jobs import find_lr_job  # noqa: E402
from lrlab.cli.sweeps import LRFindSweepReport  # noqa: E402
from lrlab.tasks.config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="find_lr")
def main(cfg: DictConfig) -> None:
    find_lr_job(cfg)


if __name__ == "__main__":
    run_cli(main, LRFindSweepReport)
