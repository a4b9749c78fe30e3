"""Running a task as a Hydra job: `train_job`, `find_lr_job` and `eval_job` (the three
entry points' jobs).

Policy: bad input stops a single run with one line and exit status 2. In a multirun a failing
job is recorded in its own `summary.json` and the sweep goes on; when all jobs have run,
`SweepReport` (lrlab.cli.sweeps) prints one line per job and the sweep exits with status 1 if
any job failed (a diverged job is a result, not a failure: exit 0). A run stopped by a signal
(SIGTERM, SIGUSR1, SIGINT) checkpoints, says how to continue and exits with 128 + the signal's
number; in a multirun the sweep stops there and still reports the jobs that ran.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrlab.cli.run_lock import run_dir_lock
from lrlab.cli.sweep_workers import job_running, watch_parent
from lrlab.cli.sweeps import (
    STOPPED,
    SweepStopped,
    catch_sweep_stops,
    current_overrides,
    hydra_runtime,
    is_multirun,
    parallel_jobs,
    parallel_sweep_stopping,
    record_refused_job,
    record_sweep_stop,
    stop_if_signalled,
)
from lrlab.errors import ConfigError, RunDirError

log = logging.getLogger(__name__)


def write_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`: what Hydra writes into a run dir.
    lrlab writes them itself (`hydra.output_subdir: null`), after checking that the dir holds
    no other run, so a refused run cannot overwrite another run's files."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    out = run_dir / ".hydra"
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "config.yaml": cfg,
        "hydra.yaml": HydraConfig.instance().cfg,
        "overrides.yaml": HydraConfig.get().overrides.task,
    }
    for name, node in files.items():
        (out / name).write_text(OmegaConf.to_yaml(node))


def first_job() -> bool:
    """A single run, or a sweep's first job: the config tree is printed once per command."""
    hc = hydra_runtime()
    return not is_multirun() or hc is None or int(hc.job.get("num") or 0) == 0


def set_up_launcher_worker() -> None:
    """In a job that a launcher runs beside others on this machine (joblib's `n_jobs`): tell
    `lrlab.parallel` how many run at once, so each job takes its share of the cores; give
    DataLoader workers the platform's start method back (joblib's loky workers make their own
    the default, and a DataLoader cannot start its workers with it); and between jobs, record a
    stop signal instead of dying of it (the running job's StopSignals hands it on here)."""
    import multiprocessing

    from lrlab.parallel import CONCURRENT_JOBS_ENV

    n_jobs = parallel_jobs()
    if n_jobs is None:
        return
    os.environ.setdefault(CONCURRENT_JOBS_ENV, str(n_jobs))
    catch_sweep_stops()
    watch_parent()  # a worker whose main process is killed stops, checkpointed
    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)


def run_job(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any] | None:
    set_up_launcher_worker()
    try:
        with job_running():
            return task(cfg)
    except ConfigError as e:
        if is_multirun():
            log.error("job failed: %s (the sweep goes on)", e)
            return None
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except RunDirError as e:  # disk full, read-only: the run's files, not a bug
        if is_multirun():
            log.error("job failed: %s (the sweep goes on)", e)
            return None
        print(
            f"error: {e}; the run stopped (its last checkpoint is intact): free space or "
            "choose a writable hydra.run.dir, then continue with trainer.resume=auto",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    except Exception:
        if is_multirun():
            log.exception("job failed (recorded in summary.json; the sweep goes on)")
            return None
        raise
    finally:  # find_lr and eval jobs too: the next job of a sequential sweep starts clean
        from lrlab.data.loaders import stop_worker_processes

        stop_worker_processes()


def check_writable(run_dir: Path) -> None:
    """A run dir on a read-only file system (or one this user cannot write): one line."""
    try:
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as e:
        raise ConfigError(
            f"{run_dir} is not writable ({e.strerror}); choose another hydra.run.dir / "
            "hydra.sweep.dir (a finished run there is still reported with trainer.resume=auto)"
        ) from None


@contextlib.contextmanager
def refusal_noted(run_dir: Path) -> Iterator[None]:
    """A job refused before it wrote anything: in a sweep, note it for the report."""
    try:
        yield
    except ConfigError as e:
        if is_multirun():
            record_refused_job(run_dir, str(e))
        raise


def train_job(cfg: DictConfig) -> float | None:
    """train.py's job: check the run dir, write Hydra's files, train, act on the outcome."""
    from lrlab.cli.distributed import barrier, quiet_other_ranks
    from lrlab.parallel import is_main_process
    from lrlab.tasks.train import prepare, train

    def task(cfg: DictConfig) -> dict[str, Any]:
        run_dir = Path(cfg.paths.output_dir)
        if parallel_sweep_stopping():  # a parallel sweep that is stopping: do not start
            log.warning("the sweep was stopped: %s not started", run_dir)
            return {}
        stop_if_signalled(run_dir)  # a sequential sweep signalled between two jobs
        quiet_other_ranks()  # torchrun: rank 0 logs and writes
        with contextlib.ExitStack() as held:
            with refusal_noted(run_dir):  # before anything is written
                if is_main_process():  # one process trains a run dir (torchrun: rank 0's)
                    held.enter_context(run_dir_lock(run_dir))
                start = prepare(cfg)  # refuses a dir holding another run, another config
            barrier()  # torchrun: every process has looked at the run dir before rank 0 writes
            if start.finished is not None:  # trainer.resume=auto: reported, files untouched
                done = start.finished
                if is_main_process():
                    print(
                        f"{run_dir}: {done.get('status')} ({done.get('epochs_completed')} "
                        "epochs) already; nothing to train"
                    )
                return done
            if is_main_process():
                with refusal_noted(run_dir):
                    check_writable(run_dir)
                write_hydra_files(run_dir, cfg)
                if cfg.extras.print_config and first_job():
                    from lrlab.cli.config_tree import print_config

                    print_config(cfg)
            return train(cfg, start, current_overrides())

    summary = run_job(task, cfg) or {}
    if summary.get("status") in STOPPED:
        stopped(summary, Path(cfg.paths.output_dir))
    # What a sweeper optimises (hparams_search); None for a run that failed or diverged early
    if summary.get("status") == "completed" and cfg.optimized_metric not in summary:
        log.warning(
            "optimized_metric=%s is not a key of summary.json (e.g. best_val_acc, "
            "final_val_acc, final_val_loss): the sweeper gets no value",
            cfg.optimized_metric,
        )
    return summary.get(cfg.optimized_metric)


def stopped(summary: dict[str, Any], run_dir: Path) -> None:
    """A run stopped by a signal: one line saying how to continue, then exit 128 + signal."""
    error = summary.get("error") or ""
    name = error.rsplit(" ", 1)[-1]  # "stopped by SIGTERM"
    signum = (
        signal.Signals[name] if name in signal.Signals.__members__ else STOPPED[summary["status"]]
    )
    where = summary.get("checkpoint")
    saved = (
        f"checkpoint at step {where['step']} ({where['epoch']} epochs done)"
        if where
        else "no checkpoint"
    )
    print(
        f"{summary['status']} ({error}); {saved} in {run_dir}: re-run the same command with "
        f"trainer.resume=auto (and this hydra.run.dir / hydra.sweep.dir) to continue",
        file=sys.stderr,
    )
    hc = hydra_runtime()
    if parallel_jobs() is not None:
        # One job of a parallel sweep: the process goes on (it is a launcher's worker); its
        # next jobs do not start, and the sweep's own process reports and exits.
        record_sweep_stop(signum, None)
        return
    if is_multirun():
        raise SweepStopped(Path(hc.sweep.dir), 128 + signum)
    raise SystemExit(128 + signum)


def find_lr_job(cfg: DictConfig) -> None:
    from lrlab.tasks.find_lr import find_lr

    def task(cfg: DictConfig) -> dict[str, Any]:
        stop_if_signalled(Path(cfg.paths.output_dir))
        write_hydra_files(Path(cfg.paths.output_dir), cfg)
        return find_lr(cfg)

    run_job(task, cfg)


def eval_job(cfg: DictConfig) -> dict[str, Any] | None:
    """eval.py's job: evaluate (or predict) with the one-line errors of every lrlab command."""

    def task(cfg: DictConfig) -> dict[str, Any]:
        OmegaConf.to_object(cfg)  # the schema's range checks, before anything loads
        if cfg.mode == "predict":
            from lrlab.tasks.predict import predict

            return {"predictions": str(predict(cfg))}
        from lrlab.tasks.evaluate import evaluate_run

        result = evaluate_run(cfg)
        print(
            f"{cfg.split} accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
            f"({result['n']} images, {cfg.checkpoint} checkpoint of epoch {result['epoch']}"
            f"{', EMA' if cfg.ema else ''}{', flip TTA' if cfg.tta else ''}) -> {cfg.run_dir}"
        )
        return result

    return run_job(task, cfg)
