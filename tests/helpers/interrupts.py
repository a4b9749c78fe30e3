"""Interrupting runs on purpose: callbacks that slow a run down or signal it at an exact point,
and helpers that start `train.py` as a user would, then signal or kill it mid-epoch."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lrlab.engine.callbacks import Callback
from tests.helpers import ROOT

SLOW = "+callbacks.pace._target_=tests.helpers.interrupts.SlowSteps"  # a train.py override


class SlowSteps(Callback):
    """Sleep `seconds` after every optimizer step: an epoch lasts long enough to be signalled
    from outside. It changes no state, only the pace."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds

    def on_step_end(self, state, result) -> None:
        time.sleep(self.seconds)


class SignalAt(Callback):
    """Send `signum` to this process at an exact point: in `hook` (`on_step_start` or
    `on_step_end`) of optimizer step `step` (counted from 1), or at the end of epoch `epoch`'s
    training, just before its validation (`on_train_epoch_end`). The handler runs at once,
    inside the hook."""

    def __init__(self, signum: int, hook: str = "on_step_start", step: int = 0, epoch: int = 0):
        self.signum, self.hook, self.step, self.epoch = signum, hook, step, epoch
        self.sent = False

    def _send(self, hook: str, due: bool) -> None:
        if hook == self.hook and due and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_step_start(self, state) -> None:
        self._send("on_step_start", state.step + 1 == self.step)

    def on_step_end(self, state, result) -> None:
        self._send("on_step_end", state.step == self.step)

    def on_train_epoch_end(self, state) -> None:
        self._send("on_train_epoch_end", state.epoch + 1 == self.epoch)


def add_callback(monkeypatch, make: Callable[[], Callback], first: bool = True) -> None:
    """Make `lrlab.tasks.train.setup` add a callback (outside the config, so a resume with the
    same config is accepted): first in the list, or just before Checkpointing (the last)."""
    from lrlab.tasks import train as train_module

    real_setup = train_module.setup

    def setup(*args: Any, **kwargs: Any):
        state, callbacks = real_setup(*args, **kwargs)
        callbacks.insert(0 if first else len(callbacks) - 1, make())
        return state, callbacks

    monkeypatch.setattr(train_module, "setup", setup)


# --- train.py as a subprocess


def start_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """Start train.py in its own process group (a scheduler or Ctrl-C signals the group)."""
    env = {**os.environ, "PROJECT_ROOT": str(cwd), **(env or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def step_rows(metrics: Path) -> int:
    if not metrics.is_file():
        return 0
    return sum('"type": "step"' in line for line in metrics.read_text().splitlines())


def wait_for_steps(proc: subprocess.Popen, metrics: Path, n: int, timeout: float = 120) -> None:
    """Wait until `metrics` holds `n` step rows (the run is mid-epoch, past its set-up)."""
    deadline = time.monotonic() + timeout
    while step_rows(metrics) < n:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"the run ended before {n} steps:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {n} step rows in {metrics} after {timeout} s")
        time.sleep(0.05)


def signal_group(proc: subprocess.Popen, signum: int, timeout: float = 120) -> tuple[str, str]:
    """Send `signum` to the run's process group (its DataLoader workers included, as SLURM
    and Ctrl-C do) and wait for it to end; returns (stdout, stderr)."""
    os.killpg(proc.pid, signum)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def rows_without_times(metrics: Path) -> list[dict]:
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def file_hashes(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones and .hydra/ included) by its content's hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class SignalAfterJob:
    """A Hydra callback (`+hydra.callbacks.x._target_=...`): send `signum` to this process when
    job `job` of a multirun has ended, before the next one starts."""

    def __init__(self, job: int = 0, signum: int = int(signal.SIGTERM)) -> None:
        self.job, self.signum = job, signum

    def on_job_end(self, config, job_return, **kwargs) -> None:
        if job_return.hydra_cfg.hydra.job.num == self.job:
            os.kill(os.getpid(), self.signum)
