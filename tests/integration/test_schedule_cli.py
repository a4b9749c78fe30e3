"""`lrlab-schedule` (and scripts/plot_schedule.py): the schedule preview as a command."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lrlab.cli.preview import main
from tests.helpers import ROOT


def test_console_script_is_declared():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["lrlab-schedule"] == "lrlab.cli.preview:main"


@pytest.mark.slow  # builds the digits loaders and draws a figure
def test_installed_command_writes_the_plot_and_the_steps(tmp_path):
    script = shutil.which("lrlab-schedule", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("lrlab-schedule not installed: `pip install -e .` (make setup) installs it")
    out = tmp_path / "plots"
    result = subprocess.run(
        [script, "scheduler=sgdr", "trainer.epochs=3", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(out / "sgdr.png"), str(out / "sgdr.csv")]
    with open(out / "sgdr.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 23  # digits: 23 optimizer steps per epoch
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[23] == lrs[0] == 1e-3  # restart after 1 epoch (sgdr: 1, 3, 7, ...)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optimizer.lr=auto"], "error: optimizer.lr=auto is found by the LR finder"),
        (["scheduler.pct_start=2"], "error: scheduler.pct_start=2: must be in (0, 1)"),
        (["scheduler=onecycl"], "error: In 'train': Could not find 'scheduler/onecycl'"),
        (["trainer.epoch=2"], "error: trainer.epoch is not a key of trainer; did you mean"),
        (
            ["+scheduler.pct_strat=0.5"],
            "error: scheduler.pct_strat is not a key of scheduler; did you mean scheduler.pct_start?",
        ),
        (
            ["scheduler=torch_steplr", "+scheduler.gama=0.5"],
            "error: scheduler.gama is not a key of scheduler; did you mean scheduler.gamma?",
        ),
        (
            ["scheduler=plateau", "scheduler.patience=-1"],
            "error: scheduler.patience=-1: must be an integer >= 0",
        ),
    ],
)
def test_bad_input_is_one_line(capsys, args, message, tmp_path):
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err
