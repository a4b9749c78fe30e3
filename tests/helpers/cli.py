"""Run an entry point's command line in this process: Hydra's own argument parsing, config
search path, run dir and sweep, lrlab's one-line errors and exit status, without a Python
start-up and the imports per call (what made the suite slow). The few end-to-end tests that
need a real process (signals, torchrun, launchers) use `tests.helpers.run_cli`."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import hydra
import torch
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from lrlab.cli.errors import main as cli_main
from lrlab.cli.jobs import find_lr_job, train_job
from lrlab.cli.sweeps import LRFindSweepReport, SweepReport
from tests.helpers import CONF

ENTRY_POINTS = {  # script: (config name, job, sweep report), as train.py and find_lr.py
    "train.py": ("train", train_job, SweepReport),
    "find_lr.py": ("find_lr", find_lr_job, LRFindSweepReport),
}


def cli_in_process(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python <script> <args>` from `cwd` (outputs under it), run here: the exit status,
    stdout and stderr as a subprocess would give them."""
    config_name, job, report = ENTRY_POINTS[script]

    @hydra.main(version_base="1.3", config_path=str(CONF), config_name=config_name)
    def main(cfg: DictConfig) -> object:
        return job(cfg)

    out, err = io.StringIO(), io.StringIO()
    saved = (sys.argv, os.getcwd(), dict(os.environ), logging.root.handlers[:])
    threads = torch.get_num_threads()  # a run may set its own (trainer.num_threads)
    sys.argv = [script, *args]
    os.chdir(cwd)
    os.environ["PROJECT_ROOT"] = str(cwd)
    os.environ.pop("HYDRA_FULL_ERROR", None)
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            cli_main(main, report)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv, cwd_before, env, handlers = saved
        os.chdir(cwd_before)
        os.environ.clear()
        os.environ.update(env)
        for handler in logging.root.handlers[:]:  # Hydra's job logging: the run's log file
            if handler not in handlers:
                logging.root.removeHandler(handler)
                handler.close()
        GlobalHydra.instance().clear()
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())
