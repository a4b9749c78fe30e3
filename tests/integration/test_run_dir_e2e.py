"""Run directories end to end: a run never changes a directory that holds another run's
records (`train()` and `train.py`), and runs started together get their own directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrlab.errors import ConfigError
from lrlab.tasks.train import train
from tests.helpers.cli import cli_in_process
from tests.helpers.interrupts import file_hashes, start_cli

FAST = [
    "trainer.epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.num_threads=1",
]


def test_in_process_a_second_run_in_the_same_dir_changes_nothing(make_cfg):
    first = make_cfg(*FAST)
    train(first)
    run_dir = Path(first.paths.output_dir)
    before = file_hashes(run_dir)
    for overrides in (
        ["trainer.epochs=2"],  # a new run
        ["optimizer.lr=-1"],  # a new run that would fail validation
        ["trainer.epochs=2", "trainer.resume=auto", "trainer.num_workers=-1"],  # its resume, bad
        ["trainer.epochs=2", "trainer.resume=auto", "optimizer=sgd"],  # its resume, other config
    ):
        with pytest.raises(ConfigError):
            train(make_cfg(*FAST, *overrides))
        assert file_hashes(run_dir) == before, overrides


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory) -> tuple[Path, Path]:
    """(cwd, run dir) of a run that train.py completed, with its .hydra/ and train.log."""
    cwd = tmp_path_factory.mktemp("cli")
    run_dir = cwd / "run"
    proc = cli_in_process("train.py", *FAST, f"hydra.run.dir={run_dir}", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    return cwd, run_dir


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.epochs=2"], "already holds a completed run, 1 epochs; continue it with "
         "trainer.resume=auto, or choose another hydra.run.dir"),
        (["optimizer.lr=-1"], "already holds a completed run"),
        (["trainer.epochs=2", "trainer.resume=auto", "trainer.num_workers=-1"],
         "trainer.num_workers must be null or an integer >= 0, got -1"),
        (["trainer.epochs=2", "trainer.resume=auto", "optimizer=sgd"],
         "differs from the one"),
        (["trainer.resume=auto", "trainer.epochs=2", "data.image_size=8"], "data.image_size (16 -> 8)"),
    ],
)  # fmt: skip
def test_reusing_a_completed_runs_dir_is_one_line_exit_2_and_changes_nothing(
    completed_run, overrides, message
):
    cwd, run_dir = completed_run
    before = file_hashes(run_dir)
    assert ".hydra/config.yaml" in before and "checkpoints/last.ckpt" in before
    proc = cli_in_process("train.py", *FAST, *overrides, f"hydra.run.dir={run_dir}", cwd=cwd)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    if "already holds" in message:
        assert str(run_dir) in lines[0]
    assert file_hashes(run_dir) == before


@pytest.mark.slow
def test_two_runs_started_together_get_their_own_dirs(tmp_path):
    procs = [start_cli(*FAST, cwd=tmp_path) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    runs = sorted(tmp_path.glob("outputs/runs/*/*"))
    assert len(runs) == 2
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["epochs_completed"] == 1
        assert "resumed_from" not in summary
