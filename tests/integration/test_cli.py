"""The entry points as a user runs them from a scratch directory: Hydra's command line in this
process (`cli_in_process`), and as a real process for the default run (sweeps in real
processes: test_launchers.py, test_signals.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli
from tests.helpers.cli import cli_in_process


def only_dir(pattern: str, cwd: Path) -> Path:
    found = sorted(cwd.glob(pattern))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.slow
def test_default_run_reaches_95_percent_on_digits(tmp_path):
    result = run_cli("train.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = only_dir("outputs/runs/*/*", tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["final_val_acc"] >= 0.95
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "metrics.jsonl").is_file()


@pytest.mark.slow
def test_multirun_gives_one_recorded_job_per_combination(tmp_path):
    args = ["-m", "optimizer=adam,sgd", "seed=0,1", "debug=fast"]
    result = cli_in_process("train.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = only_dir("outputs/multiruns/*/*", tmp_path)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["overrides"] == overrides
        seen.add(tuple(sorted(o for o in overrides if not o.startswith("debug"))))
    assert len(seen) == 4
    assert "[3] optimizer=sgd seed=1 debug=fast: completed" in result.stdout


@pytest.mark.slow
def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    result = cli_in_process("train.py", "-m", "optimizer.lr=-1,0.001", "debug=fast", cwd=tmp_path)
    assert result.returncode == 1
    assert "1 job(s) failed: 0" in result.stderr
    sweep = only_dir("outputs/multiruns/*/*", tmp_path)
    failed = json.loads((sweep / "0" / "summary.json").read_text())
    ok = json.loads((sweep / "1" / "summary.json").read_text())
    assert failed["status"] == "failed" and "optimizer.lr" in failed["error"]
    assert ok["status"] == "completed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.epochs=0"], "error: trainer.epochs must be an integer >= 1, got 0"),
        (["optimizer.lr=0"], "error: optimizer.lr must be a number > 0"),
        (
            ["data=imagefolder", "data.root=/no/such/dir"],
            "error: data.root='/no/such/dir' does not exist",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    result = cli_in_process("train.py", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


def test_unknown_option_lists_the_available_ones(tmp_path):
    result = cli_in_process("train.py", "optimizer=adamm", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'optimizer/adamm'" in result.stderr and "adamw" in result.stderr


@pytest.mark.slow
def test_find_lr_sweep_prints_each_jobs_suggestions(tmp_path):
    result = cli_in_process(
        "find_lr.py", "-m", "optimizer=adam,sgd", "lr_find.num_it=20", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if re.match(r"\[\d+\] ", line)]
    assert [line.split(" lr_find")[0] for line in lines] == [
        "[0] optimizer=adam",
        "[1] optimizer=sgd",
    ]
    assert all("valley" in line for line in lines)
    sweep = only_dir("outputs/lr_find_multiruns/*/*", tmp_path)
    assert (sweep / "0" / "lr_find.json").is_file() and (sweep / "1" / "lr_find.png").is_file()


def test_a_users_model_from_its_own_config_dir(tmp_path):
    """docs/extending.md: a model is a Python class plus one YAML, no lrlab edit."""
    conf = tmp_path / "my_conf" / "model"
    conf.mkdir(parents=True)
    (conf / "tiny.yaml").write_text(
        "defaults:\n  - /model/training@_here_: default\n  - _self_\n"
        "_target_: tests.helpers.toy.TinyNet\nwidth: 6\n"
    )
    args = ["--config-dir", str(tmp_path / "my_conf"), "model=tiny", "debug=fast"]
    result = cli_in_process("train.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = only_dir("outputs/runs/*/*", tmp_path)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    typo = cli_in_process("train.py", *args, "+model.widht=3", cwd=tmp_path)
    assert typo.returncode == 2
    assert (
        typo.stderr.strip()
        .splitlines()[-1]
        .startswith("error: model.widht is not a key of model; did you mean model.width?")
    )
