"""LR range test: `python find_lr.py` takes train.py's config groups and overrides
(`python find_lr.py optimizer=sgd data=flowers data.root=...`) and writes lr_find.json/png.
See the README's "LR finder" section."""

from __future__ import annotations

from lrlab.runtime import configure_process

configure_process()  # before anything loads torch: OpenMP reads its wait policy once

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from lrlab.entry import run_job  # noqa: E402


@hydra.main(version_base="1.3", config_path="conf", config_name="find_lr")
def main(cfg: DictConfig) -> None:
    from lrlab.lr_finder import run_from_config

    run_job(run_from_config, cfg)


if __name__ == "__main__":
    main()
