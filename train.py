"""Train one model: `python train.py optimizer=sgd scheduler=clr` (sweeps: `-m`). See README."""

from __future__ import annotations

from lrlab.runtime import configure_process, report_first_step

configure_process()  # before anything loads torch: OpenMP reads its wait policy once

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from lrlab.entry import run_job  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lrlab.training import train

    report_first_step()  # only with LRLAB_FIRST_STEP_FILE set (benchmarks/peers)
    summary = run_job(train, cfg)
    return summary.get("best_val_acc") if summary else None  # the value sweepers optimise


if __name__ == "__main__":
    main()
