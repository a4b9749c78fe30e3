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

from lrlab.cli.jobs import SweepStopped

log = logging.getLogger(__name__)

RESUME = "trainer.resume=auto"


def restarted_by_slurm() -> bool:
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0


class RequeueResumes:
    """Mixed into a submitit launcher: requeued jobs resume, stopped jobs end their process."""

    requeued = False  # True on the copy of the launcher that `checkpoint()` resubmits

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        self.requeued = True  # pickled with the DelayedSubmission: only this job's copy
        return super().checkpoint(*args, **kwargs)  # type: ignore[misc]

    def __call__(self, sweep_overrides: list[str], *args: Any) -> Any:
        resuming = self.requeued or restarted_by_slurm()
        if resuming and not any(o.startswith("trainer.resume=") for o in sweep_overrides):
            log.info("requeued job: continuing from its checkpoint (%s)", RESUME)
            sweep_overrides = [*sweep_overrides, RESUME]
        try:
            return super().__call__(sweep_overrides, *args)  # type: ignore[misc]
        except SweepStopped as stop:
            # This process runs one job of the sweep, not the sweep: end it with the signal's
            # status (the scheduler requeues it, or the sweep's report shows it as preempted).
            raise SystemExit(stop.exit_code) from None
