"""What lrlab adds to Hydra's submitit launchers (SLURM, and the local executor that mimics it;
the classes are in `hydra_plugins.lrlab_launchers`, where Hydra looks for plugins): preemption
handling: a job stopped by the scheduler checkpoints, is requeued, and continues from
its checkpoint in the same run dir.

How the pieces fit (docs/scaling.md, "Preemption"): submitit installs a handler for its
preemption signal (USR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise) that calls the launcher's
`checkpoint()`, stores the returned `DelayedSubmission` and requeues the job. lrlab's
`StopSignals` takes that signal first, finishes the optimizer step, writes the checkpoint, and
then hands the signal on to submitit's handler. `checkpoint()` here marks the resubmitted job so
that it runs with `trainer.resume=auto`; a job that SLURM itself requeued (after a preemption
with SIGTERM) is recognised by `SLURM_RESTART_COUNT`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lrlab.cli.sweeps import SweepStopped

log = logging.getLogger(__name__)

RESUME = "trainer.resume=auto"


def export_torch_distributed_env() -> None:
    """A job of several tasks (hydra.launcher.tasks_per_node x nodes) trains data parallel:
    set RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT from SLURM's variables, as torchrun
    would (lrlab.engine.distributed reads them)."""
    import submitit

    try:
        tasks = submitit.JobEnvironment().num_tasks
    except RuntimeError:  # not in a submitit job
        return
    if tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export()


def restarted_by_slurm() -> bool:
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


class RequeueResumes:
    """Mixed into a submitit launcher: requeued jobs resume, stopped jobs end their process."""

    requeued = False  # True on the copy of the launcher that `checkpoint()` resubmits

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        self.requeued = True  # pickled with the DelayedSubmission: only this job's copy
        return super().checkpoint(*args, **kwargs)  # type: ignore[misc]

    def __call__(self, sweep_overrides: list[str], *args: Any) -> Any:
        export_torch_distributed_env()
        resuming = self.requeued or restarted_by_slurm()
        if resuming and not any(o.startswith("trainer.resume=") for o in sweep_overrides):
            log.info("requeued job: continuing from its checkpoint (%s)", RESUME)
            sweep_overrides = [*sweep_overrides, RESUME]
        try:
            return super().__call__(sweep_overrides, *args)  # type: ignore[misc]
        except SweepStopped:
            # This process runs one job of the sweep, not the sweep: the job ends here, recorded
            # as preempted (SLURM requeues a preempted job itself where the cluster is set up
            # to; the sweep's report shows it otherwise). An exit without a result would make
            # the submitting process fail without its report.
            from hydra.core.utils import JobReturn, JobStatus

            return JobReturn(overrides=sweep_overrides, status=JobStatus.COMPLETED)
