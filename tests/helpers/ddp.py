"""`torchrun --nproc_per_node=2 train.py ...` on the CPU (gloo), and one uninterrupted such run
made once per test session, which the data-parallel tests compare their runs with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, made_once

HELPERS_PATH = os.pathsep.join([str(ROOT), str(ROOT / "src")])
COMMON = ["trainer.progress_bar=false", "trainer.num_threads=1", "trainer.log_every_n_steps=5"]
DDP = ["trainer.epochs=3", "data.batch_size=32"]  # 3 epochs of 23 steps on 2 processes


def train(*args: str, cwd: Path, processes: int = 1) -> subprocess.CompletedProcess:
    """`python train.py <COMMON> <args>` from `cwd`, under torchrun when `processes` > 1."""
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd = [sys.executable, *(launcher if processes > 1 else []), str(ROOT / "train.py")]
    env = {**os.environ, "PROJECT_ROOT": str(cwd), "PYTHONPATH": HELPERS_PATH}
    return subprocess.run(
        [*cmd, *COMMON, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def ddp_reference() -> Path:
    """The run dir of `COMMON + DDP` on 2 processes, uninterrupted (3 processes to start: made
    once per session, under pytest-xdist once for all workers)."""

    def make(cwd: Path) -> None:
        result = train(*DDP, f"hydra.run.dir={cwd / 'run'}", cwd=cwd, processes=2)
        assert result.returncode == 0, result.stderr[-3000:]

    return made_once("ddp", make) / "run"
