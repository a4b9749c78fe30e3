"""torchrun glue: every process runs train.py and composes its own config, so the processes
agree on what Hydra would otherwise pick per process (the run dir's timestamp) before Hydra
starts, and only rank 0 writes the run's log file."""

from __future__ import annotations

import logging
import os
from datetime import datetime

from lrlab.parallel import is_distributed, is_main_process

# The run dir's (and sweep dir's) timestamp; conf/hydra/default.yaml reads it when it is set.
RUN_STAMP_ENV = "LRLAB_RUN_STAMP"


def share_run_stamp() -> None:
    """Join the process group and give every process rank 0's timestamp (Hydra's `${now:}`
    differs between processes started a moment apart)."""
    if not is_distributed() or RUN_STAMP_ENV in os.environ:
        return
    from lrlab.engine.distributed import broadcast_from_main, init_process_group

    init_process_group()
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S.%f") if is_main_process() else None
    os.environ[RUN_STAMP_ENV] = broadcast_from_main(stamp)


def quiet_other_ranks() -> None:
    """On ranks other than 0: no log file (rank 0 writes train.log), warnings only on the
    console (every process would print the same lines)."""
    if is_main_process():
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.WARNING)


def barrier() -> None:
    """Wait for every process of a data parallel run, joining its process group first (a
    multi-task SLURM job has not joined it yet); no-op in a single-process run."""
    if not is_distributed():
        return
    import torch.distributed as dist

    from lrlab.engine.distributed import init_process_group

    init_process_group()
    dist.barrier()
