"""What a sweep shares between its jobs: the Hydra context, the stop signals, and the report.

`SweepReport` (a Hydra callback) refuses a sweep dir that holds runs unless they are resumed,
keeps the sweep's stop signals installed around its jobs, and when they have run prints one
line per job and sets the exit status: 1 if any job failed (a diverged job is a result; a
stopped one continues with `trainer.resume=auto`), 128 + the signal's number if a signal
stopped the sweep.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lrlab.cli.sweep_workers import ParallelSweepSignals
from lrlab.engine.signals import StopSignals

log = logging.getLogger(__name__)

STOPPED = {"preempted": signal.SIGTERM, "interrupted": signal.SIGINT}
# A multirun's stop signals, installed by SweepReport around all of its jobs: a signal that
# comes between two jobs stops the sweep before the next one (`stop_if_signalled`).
_sweep_signals: StopSignals | None = None


class SweepStopped(BaseException):
    """A job of a multirun was stopped by a signal: the launcher must not start the next one."""

    def __init__(self, sweep_dir: Path, exit_code: int) -> None:
        super().__init__(f"sweep stopped ({sweep_dir})")
        self.sweep_dir, self.exit_code = sweep_dir, exit_code


def hydra_runtime() -> Any:
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def is_multirun() -> bool:
    from hydra.types import RunMode

    hc = hydra_runtime()
    return hc is not None and hc.mode == RunMode.MULTIRUN


def current_overrides() -> list[str]:
    hc = hydra_runtime()
    return list(hc.overrides.task) if hc is not None else []


# Signals that stop a sweep whose jobs run side by side (joblib): the running jobs checkpoint
# and end, the jobs not started yet do not start, and the sweep reports and exits 128 + signal.
SWEEP_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_sweep_stop: int | None = None  # this process's: the exit status of a stopped sweep


def parallel_jobs() -> int | None:
    """`n_jobs` of a launcher that runs several jobs at once on this machine (joblib)."""
    hc = hydra_runtime()
    return OmegaConf.select(hc.launcher, "n_jobs") if is_multirun() else None


def record_sweep_stop(signum: int, frame: Any) -> None:
    global _sweep_stop
    if _sweep_stop is None:
        log.warning(
            "%s: the running jobs checkpoint and stop, the others do not start",
            signal.Signals(signum).name,
        )
    _sweep_stop = 128 + signum


def catch_sweep_stops() -> None:
    if threading.current_thread() is threading.main_thread():
        for signum in SWEEP_STOP_SIGNALS:
            signal.signal(signum, record_sweep_stop)


def parallel_sweep_stopping() -> bool:
    """A parallel sweep (joblib) that a signal stopped: this worker starts no further job."""
    return _sweep_stop is not None


# In a sweep dir: one note per job lrlab refused (`<job>.json`: its overrides and the error).
# A refused job writes nothing into its own dir (it may hold another run), so the report,
# which runs in the sweep's main process, reads what happened to it here.
REFUSED_DIR = ".refused"


def record_refused_job(run_dir: Path, error: str) -> None:
    hc = hydra_runtime()
    if hc is None:
        return
    note = Path(hc.sweep.dir) / REFUSED_DIR / f"{run_dir.name}.json"
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(json.dumps({"overrides": current_overrides(), "error": error}))
    except OSError as e:  # a read-only sweep dir: the job's log line still says it
        log.warning("could not record the refused job in %s: %s", note, e)


def refused_jobs(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    folder = sweep_dir / REFUSED_DIR
    notes = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return {note.stem: json.loads(note.read_text()) for note in notes}


def clear_refused_jobs(sweep_dir: Path) -> None:
    """A new invocation of the sweep: the earlier one's refusals are history."""
    folder = sweep_dir / REFUSED_DIR
    for note in folder.glob("*.json") if folder.is_dir() else []:
        note.unlink(missing_ok=True)


def stop_if_signalled(run_dir: Path) -> None:
    """A signal that came between a sweep's jobs: stop before this job, with the report."""
    signals = _sweep_signals
    if signals is None or signals.received is None or not is_multirun():
        return
    status, why = signals.received
    print(
        f"{status} ({why}) before the job in {run_dir} started: re-run the same command with "
        "trainer.resume=auto (and this hydra.sweep.dir) to continue",
        file=sys.stderr,
    )
    raise SweepStopped(Path(hydra_runtime().sweep.dir), 128 + signals.signum)


class SweepReport(Callback):
    """Before a multirun: refuse a sweep dir that holds runs unless they are resumed (and
    forget an earlier invocation's W&B offline fallback). After it: one line per job; exit 1
    if any job failed. `describe` reads a job's result (train.py: its
    summary.json); find_lr.py subclasses it."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from lrlab.tasks.resume import describe
        from lrlab.tracking.wandb_tracker import clear_offline_marker

        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            self.start_signals(config)
            return
        resumed = OmegaConf.select(config, "trainer.resume") == "auto"
        held = [d.name for d in sorted(sweep_dir.iterdir()) if d.is_dir() and describe(d)]
        if held and not resumed:
            print(
                f"error: {sweep_dir} already holds runs (jobs {', '.join(held[:5])}"
                f"{', ...' if len(held) > 5 else ''}); continue the sweep with "
                "trainer.resume=auto, or choose another hydra.sweep.dir",
                file=sys.stderr,
            )
            raise SystemExit(2)
        clear_offline_marker(sweep_dir)  # a new invocation tries W&B online again
        clear_refused_jobs(sweep_dir)
        self.start_signals(config)

    def start_signals(self, config: DictConfig) -> None:
        """Between the jobs too, a signal stops the sweep (each job's run handles its own); in
        a parallel sweep (joblib), one sent to this process only reaches the workers too."""
        global _sweep_signals
        parallel = OmegaConf.select(config, "hydra.launcher.n_jobs") is not None
        signals = ParallelSweepSignals if parallel else StopSignals
        _sweep_signals = signals("the sweep stops before its next job").__enter__()

    @staticmethod
    def end_signals() -> None:
        global _sweep_signals
        if _sweep_signals is not None:
            _sweep_signals.__exit__(None, None, None)
            _sweep_signals = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # a parallel sweep (joblib) stopped by a signal: its jobs checkpointed, then report
        signals = _sweep_signals
        stop = _sweep_stop or (128 + signals.signum if signals and signals.signum else None)
        self.end_signals()  # every job ran or was stopped: nothing left to stop
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = self.report(sweep_dir)
        if stop is not None:
            raise SystemExit(stop)
        if failed:  # every failure a refusal (bad input): 2, as for a single run
            raise SystemExit(2 if set(failed) <= set(refused_jobs(sweep_dir)) else 1)

    def report(self, sweep_dir: Path) -> list[str]:
        """Print one line per job; return the jobs that failed or were refused."""
        failed, refused = [], refused_jobs(sweep_dir)
        names = {p.name for p in sweep_dir.iterdir() if p.is_dir()} | set(refused)
        for name in sorted(names, key=_job_order):
            job_dir = sweep_dir / name
            overrides = refused[name]["overrides"] if name in refused else _read_overrides(job_dir)
            if overrides is None:
                continue  # not a job dir
            text, ok = self.describe(job_dir)
            if name in refused:  # what the dir holds is not this invocation's result
                held = "" if text == "missing" else f" (the dir still holds: {text})"
                text, ok = f"refused: {refused[name]['error']}{held}", False
            print(f"[{name}] {' '.join(overrides) or '(no overrides)'}: {text}")
            if not ok:
                failed.append(name)
        print(f"sweep dir: {sweep_dir}")
        for what, jobs in (
            ("failed", [j for j in failed if j not in refused]),
            ("refused", [j for j in failed if j in refused]),
        ):
            if jobs:
                print(f"error: {len(jobs)} job(s) {what}: {', '.join(jobs)}", file=sys.stderr)
        return failed

    def describe(self, job_dir: Path) -> tuple[str, bool]:
        """The job's line and whether it did not fail (a diverged run is a result, a stopped
        one continues with trainer.resume=auto)."""
        summary_file = job_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
        status = summary.get("status", "missing")
        text = status
        if summary.get("best_val_acc") is not None:
            text += f", best_val_acc {summary['best_val_acc']:.4f}"
        finished = status in ("completed", "diverged")
        ok = finished or status in STOPPED  # a stopped job continues on a re-run: not failed
        if not finished and summary.get("error"):
            text += f" ({summary['error']})"
        return text, ok


class LRFindSweepReport(SweepReport):
    """`find_lr.py -m`: one line of suggestions per job from its lr_find.json; exit 1 if any
    job wrote none."""

    def describe(self, job_dir: Path) -> tuple[str, bool]:
        found = job_dir / "lr_find.json"
        if not found.is_file():
            return "failed (no lr_find.json)", False
        suggestions = json.loads(found.read_text())["suggestions"]
        return "  ".join(
            f"{k} {v:.2e}" if v is not None else f"{k} n/a" for k, v in suggestions.items()
        ), True


def _job_order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (sys.maxsize, name)


def _read_overrides(job_dir: Path) -> list[str] | None:
    import yaml

    f = job_dir / ".hydra" / "overrides.yaml"
    return yaml.safe_load(f.read_text()) or [] if f.is_file() else None
