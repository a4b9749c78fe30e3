"""How many cores a job may use when several jobs of a sweep run at once.

A launcher preset that runs N jobs side by side on one machine (`hydra/launcher=joblib`) sets
`LRLAB_CONCURRENT_JOBS=N` in each job's environment (`hydra.job.env_set`); a job then gives
torch cores / N threads. Oversubscribed OpenMP threads make every job several times slower
(benchmarks/README.md), so an explicit `trainer.num_threads` is the only thing that wins.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

CONCURRENT_JOBS_ENV = "LRLAB_CONCURRENT_JOBS"


def available_cores() -> int:
    """The cores this process may run on (its affinity mask: what SLURM or taskset gave it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def concurrent_jobs(cores: int | None = None) -> int | None:
    """How many jobs run side by side on this machine (None: not set by a launcher). Negative
    values follow joblib's convention: -1 is one job per core, -2 all cores but one."""
    raw = os.environ.get(CONCURRENT_JOBS_ENV, "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        log.warning("%s=%r is not an integer; ignored", CONCURRENT_JOBS_ENV, raw)
        return None
    if n < 0:
        n = (cores or available_cores()) + 1 + n
    return max(n, 1)


def threads_per_job(num_threads: int | None) -> int | None:
    """The torch thread count for this job: `num_threads` when set, else cores / concurrent
    jobs when a launcher runs several at once, else None (torch's default)."""
    if num_threads:
        return num_threads
    cores = available_cores()
    jobs = concurrent_jobs(cores)
    if jobs is None:
        return None
    threads = max(cores // jobs, 1)
    log.info(
        "%d job(s) at once on %d cores: %d torch thread(s) per job (trainer.num_threads overrides)",
        jobs,
        cores,
        threads,
    )
    return threads


# Below this many input values in a training batch (batch x channels x height x width), one
# torch thread trains faster than two: each op is too small to pay for waking a second OpenMP
# thread. Measured with the default SimpleCNN on 2 cores (benchmarks/README.md, "one thread
# for small batches"): 16,384 values (digits at 16 px) 1 thread 0.5 s faster in 5 epochs;
# 36,864 (24 px) and 65,536 (32 px, or batch 256) 2 threads 0.3-1.7 s faster.
SMALL_BATCH_VALUES = 32_768


def threads_for_batch(threads: int | None, batch_values: int) -> int | None:
    """The thread count once the data is known: `threads` (the user's or the launcher's) when
    set, else 1 for batches below SMALL_BATCH_VALUES, else None (torch's default)."""
    if threads or batch_values >= SMALL_BATCH_VALUES:
        return threads
    log.info(
        "1 torch thread: %s input values a batch are too few for more (trainer.num_threads "
        "overrides)",
        f"{batch_values:,}",
    )
    return 1


# --- data parallel ranks (torchrun sets these variables in every process it starts) ---------


def world_size() -> int:
    """How many processes train this run together (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def process_rank() -> int:
    return int(os.environ.get("RANK") or 0)


def local_rank() -> int:
    """This process's index on its machine: its GPU (cuda:<local_rank>)."""
    return int(os.environ.get("LOCAL_RANK") or 0)


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    """Rank 0: the process that writes the run's records, logs, checkpoints and W&B run."""
    return process_rank() == 0
