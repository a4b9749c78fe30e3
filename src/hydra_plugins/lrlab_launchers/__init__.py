"""lrlab's launcher presets (`hydra/launcher=slurm`, `slurm_local`): Hydra's submitit launchers
with lrlab's requeue-and-resume handling (lrlab.cli.launchers). Hydra only accepts plugins from
the `hydra_plugins` namespace package, hence this module; it imports nothing heavy, because Hydra
imports every plugin module at start-up."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from lrlab.cli.launchers import RequeueResumes
from lrlab.parallel import CONCURRENT_JOBS_ENV


class SlurmLauncher(RequeueResumes, submitit_launcher.SlurmLauncher):
    pass


class LocalLauncher(RequeueResumes, submitit_launcher.LocalLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        # submitit's local executor starts every job at once: they share this machine's cores
        # (the jobs inherit this environment; lrlab.parallel splits the cores between them).
        before = os.environ.get(CONCURRENT_JOBS_ENV)
        os.environ[CONCURRENT_JOBS_ENV] = before or str(len(job_overrides))
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            if before is None:
                del os.environ[CONCURRENT_JOBS_ENV]
