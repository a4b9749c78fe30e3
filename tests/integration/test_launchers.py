"""Sweeps through Hydra's launcher plugins, as a user runs them: joblib (jobs side by side) and
submitit's local executor (what `hydra/launcher=slurm` does on a cluster, on this machine)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT, run_cli
from tests.helpers.cli import cli_in_process
from tests.helpers.ddp import COMMON, DDP, ddp_reference

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="hydra-joblib-launcher")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher")

# The jobs of a submitit sweep run in processes of their own: they import the test helpers too.
HELPERS_ENV = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}


def rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "epoch_time_s"} for line in lines]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_joblib_sweep_reports_every_job_and_fails_for_a_failed_one(tmp_path):
    """Two jobs at once, each with its share of the cores and a DataLoader worker of its own;
    a failed job is recorded and reported, and the sweep exits 1."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "optimizer.lr=0.001,-1",
        "trainer.epochs=1",
        "trainer.num_workers=1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "[0] optimizer.lr=0.001 trainer.epochs=1 trainer.num_workers=1: completed" in (
        result.stdout
    )
    assert "1 job(s) failed: 1" in result.stderr
    assert summary(sweep / "0")["status"] == "completed" and len(rows(sweep / "0")) > 1
    assert "optimizer.lr" in summary(sweep / "1")["error"]
    cores = len(os.sched_getaffinity(0))
    assert f"2 job(s) at once on {cores} cores: {max(cores // 2, 1)} torch thread(s)" in (
        (sweep / "0" / "train.log").read_text()
    )


@pytest.mark.slow
def test_ctrl_c_stops_a_joblib_sweep_after_checkpointing_its_running_jobs(tmp_path):
    """Ctrl-C (SIGINT to the process group) in a 3-job sweep, 2 at a time: the 2 running jobs
    checkpoint and are recorded as interrupted, the third does not start, the sweep reports
    and exits 130; `trainer.resume=auto` then finishes all three."""
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "seed=0,1,2",
        "trainer.epochs=2",
        "+callbacks.ctrl_c._target_=tests.helpers.signal_at.SignalAt",
        "+callbacks.ctrl_c.step=30",
        "+callbacks.ctrl_c.signal=SIGINT",
        "+callbacks.ctrl_c.group=true",
        f"+callbacks.ctrl_c.once={tmp_path / 'signalled'}",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), **HELPERS_ENV}
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    result = subprocess.run(
        cmd,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,  # its own process group: the signal reaches the sweep only
    )
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    stopped = [summary(sweep / j) for j in ("0", "1")]
    assert all(s["status"] == "interrupted" for s in stopped)
    # The job that reached step 30 checkpointed there; the other one did wherever it was, unless
    # the signal came before its first step (its worker still starting: on a loaded machine)
    assert any(s.get("checkpoint") and s["checkpoint"]["step"] >= 30 for s in stopped)
    assert all(s.get("checkpoint") or not s.get("steps") for s in stopped)
    assert not (sweep / "2" / "summary.json").exists()
    assert "[0] " in result.stdout and "[1] " in result.stdout

    again = subprocess.run(
        [*cmd, "trainer.resume=auto"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(summary(sweep / j)["status"] == "completed" for j in "012")


@pytest.mark.slow
def test_submitit_local_sweep_records_reports_and_resubmits_only_unfinished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=slurm_local", "seed=0,1", "trainer.epochs=1"]
    # the sweep's main process is this one (the jobs are submitit's own processes)
    result = cli_in_process("train.py", *args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for job in ("0", "1"):
        assert summary(sweep / job)["status"] == "completed"
        assert f"[{job}] seed={job} trainer.epochs=1: completed, best_val_acc" in result.stdout
    assert (sweep / ".submitit").is_dir()  # submitit's pickles and logs, beside the jobs

    # Job 1 never ran (as if its node died before it started); the same sweep again:
    finished = (sweep / "0" / "metrics.jsonl").read_text()
    shutil.rmtree(sweep / "1")
    again = [*args, "trainer.resume=auto", f"hydra.sweep.dir={sweep}"]
    result = cli_in_process("train.py", *again, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (sweep / "0" / "metrics.jsonl").read_text() == finished  # reported, not retrained
    assert summary(sweep / "1")["status"] == "completed"


@pytest.mark.slow
def test_a_preempted_submitit_job_is_requeued_and_resumes_exactly(tmp_path, monkeypatch):
    """submitit's preemption signal (USR2) mid-epoch: lrlab checkpoints, submitit requeues the
    job, which continues from the checkpoint to the records of an uninterrupted run."""
    # one thread: the reference, run in this process, computes as the job's own process does
    common = ["seed=0", "trainer.epochs=2", "trainer.log_every_n_steps=5", "trainer.num_threads=1"]
    sweep = tmp_path / "sweep"
    for key, value in HELPERS_ENV.items():  # the job processes inherit this process's environment
        monkeypatch.setenv(key, value)
    result = cli_in_process(  # the sweep's main process is this one
        "train.py",
        "-m",
        "hydra/launcher=slurm_local",
        *common,
        "+callbacks.preempt._target_=tests.helpers.signal_at.SignalAt",
        "+callbacks.preempt.step=30",  # epoch 2 of 2, 7 of 23 steps in
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    job = sweep / "0"
    resumed = summary(job)
    assert resumed["status"] == "completed" and resumed["overrides"][-1] == "trainer.resume=auto"
    assert resumed["resumed_from"]["epoch"] == 1 and resumed["resumed_from"]["step_in_epoch"] > 0
    logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*.out"))
    assert "Requeued job" in logs

    reference = tmp_path / "uninterrupted"
    result = cli_in_process("train.py", *common, f"hydra.run.dir={reference}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert rows(job) == rows(reference)


@pytest.mark.slow
def test_a_two_task_submitit_job_trains_data_parallel_like_torchrun(tmp_path):
    """hydra.launcher.tasks_per_node=2: lrlab sets torchrun's variables from submitit's
    environment, and the job gives the rows of `torchrun --nproc_per_node=2` with the same
    command line (tests.helpers.ddp's run, which the torchrun tests share)."""
    sweep = tmp_path / "sweep"
    result = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=slurm_local",
        "hydra.launcher.tasks_per_node=2",
        *COMMON,
        *DDP,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert summary(sweep / "0")["world_size"] == 2
    assert rows(sweep / "0") == rows(ddp_reference())
