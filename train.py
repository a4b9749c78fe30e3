"""Train one model: `python train.py optimizer=sgd scheduler=clr` (sweeps: `-m`). See README."""

from __future__ import annotations

from lrlab.runtime import configure_process, report_first_step

configure_process()  # before anything loads torch: OpenMP reads its wait policy once

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from lrlab.cli.errors import main as run_cli  # noqa: E402
from lrlab.cli.jobs import train_job  # noqa: E402
from lrlab.tasks.config import register_configs  # noqa: E402

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    report_first_step()  # only with LRLAB_FIRST_STEP_FILE set (benchmarks/peers)
    return train_job(cfg)


if __name__ == "__main__":
    run_cli(main)
