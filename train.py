"""Train one model: `python train.py optimizer=sgd scheduler=clr` (sweeps: `-m`). See README."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from lrlab.entry import run_job


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lrlab.training import train

    summary = run_job(train, cfg)
    return summary.get("best_val_acc") if summary else None  # the value sweepers optimise


if __name__ == "__main__":
    main()
