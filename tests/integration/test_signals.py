"""Real signals from outside, as a scheduler or a terminal sends them: `train.py` is started as
a user would, slowed down (`SlowSteps`) so that it is signalled or killed mid-epoch, then the
same command with `trainer.resume=auto` must give the records of an uninterrupted run. The
signalled runs are real processes; the resumes and the uninterrupted runs, which nothing
signals, run in this process (`cli_in_process`: the same command line, no start-up), except
the stopped sweep's resume."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import cli_in_process
from tests.helpers.interrupts import (
    SLOW,
    file_hashes,
    rows_without_times,
    signal_group,
    start_cli,
    wait_for_steps,
)

pytestmark = pytest.mark.slow

# 2 epochs of 23 steps (digits), a step row every step, at least 50 ms a step.
COMMON = [
    "trainer.epochs=2",
    "trainer.log_every_n_steps=1",
    "trainer.num_threads=1",
    "trainer.progress_bar=false",
    SLOW,
]


def run(*args: str, cwd: Path) -> tuple[int, str, str]:
    """`python train.py <args>` from `cwd`, in this process: (exit status, stdout, stderr)."""
    done = cli_in_process("train.py", *args, cwd=cwd)
    return done.returncode, done.stdout, done.stderr


def run_process(*args: str, cwd: Path) -> tuple[int, str, str]:
    """The same as a real process (one that signals itself)."""
    proc = start_cli(*args, cwd=cwd)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def job_lines(out: str) -> list[str]:
    """The sweep report's line per job: `[0] seed=0 ...: completed, best_val_acc 0.31`."""
    return [line for line in out.splitlines() if re.match(r"\[\d+\] ", line)]


def summary_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's rows (epoch_time_s aside) for a number of workers."""
    rows: dict[int, list[dict]] = {}

    def get(workers: int) -> list[dict]:
        if workers not in rows:
            cwd = tmp_path_factory.mktemp(f"reference{workers}")
            code, _, err = run(
                *COMMON, f"trainer.num_workers={workers}", f"hydra.run.dir={cwd / 'run'}", cwd=cwd
            )
            assert code == 0, err[-3000:]
            rows[workers] = rows_without_times(cwd / "run" / "metrics.jsonl")
        return rows[workers]

    return get


@pytest.mark.parametrize(
    ("signum", "workers", "status"),
    [
        (signal.SIGTERM, 2, "preempted"),  # SLURM: the whole job, DataLoader workers included
        (signal.SIGINT, 2, "interrupted"),  # Ctrl-C: the terminal's whole process group
    ],
)  # SIGUSR1 (and each of these) from inside the run: test_resume, in this process
def test_a_signal_mid_epoch_then_resume_auto_equals_an_uninterrupted_run(
    tmp_path, reference, signum, workers, status
):
    run_dir = tmp_path / "run"
    command = [*COMMON, f"trainer.num_workers={workers}", f"hydra.run.dir={run_dir}"]
    proc = start_cli(*command, cwd=tmp_path)
    wait_for_steps(proc, run_dir / "metrics.jsonl", 5)
    _, err = signal_group(proc, signum)

    assert proc.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{status} (stopped by {signum.name}); checkpoint at step ")
    assert last.endswith(
        f"in {run_dir}: re-run the same command with trainer.resume=auto "
        "(and this hydra.run.dir / hydra.sweep.dir) to continue"
    )
    summary = summary_of(run_dir)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert summary["status"] == status and summary["error"] == f"stopped by {signum.name}"
    assert summary["checkpoint"] == {"epoch": ckpt["epoch"], "step": ckpt["step"]}
    assert 0 < ckpt["step_in_epoch"] < 23  # mid-epoch
    assert (summary["epochs_completed"], summary["steps"]) == (ckpt["epoch"], ckpt["step"])
    assert f"checkpoint at step {ckpt['step']} ({ckpt['epoch']} epochs done)" in last

    code, _, err = run(*command, "trainer.resume=auto", cwd=tmp_path)
    assert code == 0, err[-3000:]
    rows = rows_without_times(run_dir / "metrics.jsonl")
    assert rows == reference(workers)
    steps = [r["step"] for r in rows if r["type"] == "step"]
    assert steps == list(range(1, 47))  # no row lost or written twice
    resumed = summary_of(run_dir)
    assert resumed["status"] == "completed"
    assert resumed["resumed_from"]["step"] == ckpt["step"]
    assert resumed["wall_time_s"] > summary["wall_time_s"]  # the earlier part included


def test_a_run_killed_in_its_first_epoch_leaves_a_running_summary(tmp_path, reference):
    run_dir = tmp_path / "run"
    command = [*COMMON, "trainer.num_workers=0", f"hydra.run.dir={run_dir}"]
    proc = start_cli(*command, cwd=tmp_path)
    wait_for_steps(proc, run_dir / "metrics.jsonl", 3)
    signal_group(proc, signal.SIGKILL)
    summary = summary_of(run_dir)
    assert summary["status"] == "running" and summary["epochs_completed"] == 0
    assert not (run_dir / "checkpoints" / "last.ckpt").exists()

    code, _, err = run(*command, "trainer.resume=auto", cwd=tmp_path)  # starts over in place
    assert code == 0, err[-3000:]
    assert rows_without_times(run_dir / "metrics.jsonl") == reference(0)


def test_checkpoint_every_n_steps_loses_at_most_n_steps_to_a_sigkill(tmp_path, reference):
    run_dir = tmp_path / "run"
    command = [
        *COMMON,
        "trainer.num_workers=0",
        "trainer.checkpoint_every_n_steps=5",
        f"hydra.run.dir={run_dir}",
    ]
    proc = start_cli(*command, cwd=tmp_path)
    wait_for_steps(proc, run_dir / "metrics.jsonl", 8)
    signal_group(proc, signal.SIGKILL)
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["step"] % 5 == 0 and ckpt["step"] >= 5
    summary = summary_of(run_dir)
    assert summary["status"] == "running" and summary["epochs_completed"] <= ckpt["epoch"]

    code, _, err = run(*command, "trainer.resume=auto", cwd=tmp_path)
    assert code == 0, err[-3000:]
    # The rows written after the checkpoint are replaced, not duplicated.
    assert rows_without_times(run_dir / "metrics.jsonl") == reference(0)
    assert summary_of(run_dir)["resumed_from"]["step"] == ckpt["step"]


def test_a_stopped_sweep_reports_its_jobs_and_resumes_where_it_stopped(tmp_path):
    sweep = tmp_path / "sweep"
    command = [
        "-m",
        *COMMON,
        "trainer.epochs=1",
        "seed=0,1,2",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = start_cli(*command, cwd=tmp_path)
    wait_for_steps(proc, sweep / "1" / "metrics.jsonl", 3)
    out, err = signal_group(proc, signal.SIGTERM)

    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err and "failed" not in err
    report = job_lines(out)
    assert len(report) == 2, out  # job 2 never started
    assert report[0].startswith("[0] ") and ": completed, best_val_acc " in report[0]
    assert report[1].startswith("[1] ") and report[1].endswith(": preempted (stopped by SIGTERM)")
    assert f"sweep dir: {sweep}" in out
    assert "preempted (stopped by SIGTERM); checkpoint at step" in err
    assert not (sweep / "2").exists()
    job0 = file_hashes(sweep / "0")

    proc = start_cli(*command, "trainer.resume=auto", cwd=tmp_path)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert file_hashes(sweep / "0") == job0  # reported, not retrained: not a byte changed
    assert f"{sweep / '0'}: completed (1 epochs) already; nothing to train" in out
    report = job_lines(out)
    assert len(report) == 3 and all(": completed, best_val_acc " in line for line in report)
    job1 = summary_of(sweep / "1")
    assert job1["status"] == "completed" and job1["resumed_from"]["step"] >= 3
    assert summary_of(sweep / "2")["status"] == "completed"

    # Job 1 equals the same job run alone without interruption.
    code, _, err = run(*COMMON, "trainer.epochs=1", "seed=1", f"hydra.run.dir={tmp_path / 'alone'}",
                       cwd=tmp_path)  # fmt: skip
    assert code == 0, err[-3000:]
    assert rows_without_times(sweep / "1" / "metrics.jsonl") == rows_without_times(
        tmp_path / "alone" / "metrics.jsonl"
    )


def test_a_signal_between_two_jobs_stops_the_sweep_with_its_report(tmp_path):
    sweep = tmp_path / "sweep"
    hook = "+hydra.callbacks.stop._target_=tests.helpers.interrupts.SignalAfterJob"
    code, out, err = run_process(
        "-m", "trainer.epochs=1", "trainer.limit_train_batches=2", "trainer.num_threads=1",
        "seed=0,1", hook, f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert code == 143, err[-3000:]
    assert "Traceback" not in err
    (line,) = job_lines(out)
    assert line.startswith("[0] ") and ": completed, best_val_acc " in line
    assert (
        f"preempted (stopped by SIGTERM) before the job in {sweep / '1'} started: re-run the "
        "same command with trainer.resume=auto"
    ) in err
    assert sorted(p.name for p in (sweep / "1").iterdir()) == ["train.log"]  # Hydra's: no run


def test_a_second_ctrl_c_stops_at_once_without_a_traceback(tmp_path):
    run_dir = tmp_path / "run"
    command = [*COMMON, "+callbacks.pace.seconds=0.5", f"hydra.run.dir={run_dir}"]
    proc = start_cli(*command, cwd=tmp_path)
    wait_for_steps(proc, run_dir / "metrics.jsonl", 2)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.1)  # the first one is being handled: the step (0.5 s) is not finished
    _, err = signal_group(proc, signal.SIGINT)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("interrupted (a second Ctrl-C")
    summary = summary_of(run_dir)
    assert summary["status"] == "interrupted" and summary["error"] == "KeyboardInterrupt"
