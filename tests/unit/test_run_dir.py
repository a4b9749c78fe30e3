"""A run never writes into a directory that holds another run's records: it is refused with
one line (naming the dir and how to continue it) before anything there changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lrlab.errors import ConfigError
from lrlab.tasks.resume import describe, plan_start


@pytest.fixture
def sweep_report():
    """A SweepReport; the stop-signal handlers its on_multirun_start installs are removed
    afterwards (they would outlive the test in this process)."""
    from lrlab.cli.sweeps import SweepReport

    yield SweepReport()
    SweepReport.end_signals()


def write_summary(run_dir: Path, **fields) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(fields))


def test_what_counts_as_a_run(tmp_path):
    assert describe(tmp_path / "missing") is None
    assert describe(tmp_path) is None
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "train.log").write_text("")  # Hydra's log of a refused attempt: not a run
    assert describe(tmp_path) is None
    (tmp_path / "metrics.jsonl").write_text("")
    assert describe(tmp_path) == "a run's records"
    write_summary(tmp_path, status="completed", epochs_completed=5)
    assert describe(tmp_path) == "a completed run, 5 epochs"


def test_a_new_run_in_a_dir_holding_a_run_is_refused(tmp_path):
    write_summary(tmp_path, status="preempted", epochs_completed=2)
    with pytest.raises(ConfigError) as err:
        plan_start(tmp_path, None, 5, {})
    message = str(err.value)
    assert message.startswith(f"{tmp_path} already holds a preempted run, 2 epochs")
    assert "trainer.resume=auto" in message and "hydra.run.dir" in message


def test_resuming_another_runs_checkpoint_into_a_dir_holding_a_run_is_refused(tmp_path):
    write_summary(tmp_path / "this", status="completed", epochs_completed=1)
    other = tmp_path / "other" / "checkpoints" / "last.ckpt"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"")
    with pytest.raises(ConfigError, match="would mix two runs"):
        plan_start(tmp_path / "this", str(other), 5, {})


def test_resume_auto_in_an_empty_or_failed_dir_starts_fresh_in_place(tmp_path):
    start = plan_start(tmp_path / "new", "auto", 3, {})
    assert start.checkpoint is None and start.in_place and start.finished is None
    write_summary(tmp_path / "failed", status="failed", epochs_completed=0)
    assert plan_start(tmp_path / "failed", "auto", 3, {}).in_place


def test_resume_auto_of_a_finished_run_reports_it(tmp_path):
    write_summary(tmp_path / "a", status="completed", epochs_completed=3)
    assert plan_start(tmp_path / "a", "auto", 3, {}).finished["status"] == "completed"
    write_summary(tmp_path / "b", status="diverged", epochs_completed=1)
    assert plan_start(tmp_path / "b", "auto", 9, {}).finished["status"] == "diverged"
    # more epochs than a completed run without a checkpoint had: it cannot continue
    with pytest.raises(ConfigError, match="without a checkpoint"):
        plan_start(tmp_path / "a", "auto", 5, {})


def test_a_sweep_dir_holding_runs_is_refused_unless_resumed(tmp_path, capsys, sweep_report):
    write_summary(tmp_path / "0", status="completed", epochs_completed=1)
    report = sweep_report
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}, "trainer": {}})
    with pytest.raises(SystemExit) as exit_:
        report.on_multirun_start(config)
    assert exit_.value.code == 2
    assert f"error: {tmp_path} already holds runs (jobs 0)" in capsys.readouterr().err
    config.trainer.resume = "auto"
    report.on_multirun_start(config)  # continues it


def test_runs_composed_in_the_same_second_get_distinct_dirs():
    """Deterministic twin of the test above: Hydra names run and sweep dirs when it composes
    the config; two compositions a few milliseconds apart name different dirs."""
    from hydra import compose, initialize_config_dir

    from tests.helpers import CONF

    names = []
    for _ in range(2):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", return_hydra_config=True)
        names.append((cfg.hydra.run.dir, cfg.hydra.sweep.dir))
    assert names[0][0] != names[1][0] and names[0][1] != names[1][1]
