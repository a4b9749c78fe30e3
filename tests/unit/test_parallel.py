"""Thread shares for jobs that run side by side, and the submitit requeue hand-over."""

from __future__ import annotations

import os
import signal

import pytest

from lrlab.cli.launchers import RESUME, RequeueResumes
from lrlab.engine.signals import StopSignals
from lrlab.parallel import (
    CONCURRENT_JOBS_ENV,
    SMALL_BATCH_VALUES,
    concurrent_jobs,
    threads_for_batch,
    threads_per_job,
)


@pytest.fixture
def cores(monkeypatch):
    monkeypatch.setattr("lrlab.parallel.available_cores", lambda: 8)


def test_threads_follow_the_concurrent_jobs(monkeypatch, cores):
    monkeypatch.delenv(CONCURRENT_JOBS_ENV, raising=False)
    assert threads_per_job(None) is None  # no launcher: torch's default
    monkeypatch.setenv(CONCURRENT_JOBS_ENV, "2")
    assert threads_per_job(None) == 4
    monkeypatch.setenv(CONCURRENT_JOBS_ENV, "3")
    assert threads_per_job(None) == 2  # 8 // 3
    monkeypatch.setenv(CONCURRENT_JOBS_ENV, "16")
    assert threads_per_job(None) == 1  # never 0
    assert threads_per_job(3) == 3  # trainer.num_threads wins


def test_small_batches_get_one_thread_unless_a_count_was_chosen():
    assert threads_for_batch(None, SMALL_BATCH_VALUES - 1) == 1
    assert threads_for_batch(None, SMALL_BATCH_VALUES) is None  # torch's default
    assert threads_for_batch(4, 16) == 4  # trainer.num_threads or the launcher's share


def test_negative_n_jobs_follow_joblib(monkeypatch):
    monkeypatch.setenv(CONCURRENT_JOBS_ENV, "-1")
    assert concurrent_jobs(cores=8) == 8
    monkeypatch.setenv(CONCURRENT_JOBS_ENV, "-2")
    assert concurrent_jobs(cores=8) == 7
    monkeypatch.setenv(CONCURRENT_JOBS_ENV, "two")
    assert concurrent_jobs(cores=8) is None


class FakeSubmititLauncher:
    """Stands in for hydra-submitit-launcher's BaseSubmititLauncher."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def checkpoint(self, *args):
        return ("DelayedSubmission", self, args)

    def __call__(self, sweep_overrides, *args):
        self.calls.append(sweep_overrides)
        return "job return"


class Launcher(RequeueResumes, FakeSubmititLauncher):
    pass


def test_a_requeued_job_resumes_and_a_first_run_does_not(monkeypatch):
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    launcher = Launcher()
    launcher(["seed=1"], "hydra.sweep.dir", 0)
    assert launcher.calls[-1] == ["seed=1"]
    delayed = launcher.checkpoint(["seed=1"], "hydra.sweep.dir", 0)
    assert delayed[1].requeued  # the copy submitit pickles for the requeued job
    launcher(["seed=1"], "hydra.sweep.dir", 0)
    assert launcher.calls[-1] == ["seed=1", RESUME]
    launcher(["seed=1", "trainer.resume=/some/run"], "hydra.sweep.dir", 0)
    assert launcher.calls[-1] == ["seed=1", "trainer.resume=/some/run"]  # the user's choice


def test_a_stopped_job_ends_its_process_with_a_result(monkeypatch, tmp_path):
    """SweepStopped stops a sequential sweep; in a submitit job it only ends that job, which
    still returns a result, so the submitting process can print the sweep's report."""
    from lrlab.cli.sweeps import SweepStopped

    class Stopped(FakeSubmititLauncher):
        def __call__(self, sweep_overrides, *args):
            raise SweepStopped(tmp_path, 143)

    class StoppedLauncher(RequeueResumes, Stopped):
        pass

    returned = StoppedLauncher()(["seed=1"], "hydra.sweep.dir", 0)
    assert returned.overrides == ["seed=1"] and returned.return_value is None


def test_a_job_slurm_requeued_resumes(monkeypatch):
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    launcher = Launcher()
    launcher(["seed=1"], "hydra.sweep.dir", 0)
    assert launcher.calls[-1] == ["seed=1", RESUME]


def test_submitit_signal_reaches_its_handler_after_the_stop_is_recorded():
    """submitit's requeue handler (on USR2) runs after lrlab has recorded the stop, once."""
    seen = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
    try:
        with StopSignals() as signals:
            os.kill(os.getpid(), signal.SIGUSR2)
            assert signals.received == ("preempted", "stopped by SIGUSR2")
            assert seen == []  # not yet: the run checkpoints first
        assert seen == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, previous)
