"""`hparams_search=optuna_lr`: an Optuna search through Hydra's sweeper, as a user runs it."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers import run_cli

pytest.importorskip(
    "hydra_plugins.hydra_optuna_sweeper", reason="hydra-optuna-sweeper (the optuna extra)"
)


@pytest.mark.slow
def test_parallel_trials_optimise_the_configured_metric_in_a_stored_study(tmp_path):
    """Two trials at a time through the joblib launcher; the sweeper minimises the key that
    `optimized_metric` names (not the default best_val_acc); the study is kept in SQLite."""
    import optuna

    sweep = tmp_path / "search"
    result = run_cli(
        "train.py",
        "hparams_search=optuna_lr",
        "hydra.sweeper.n_trials=4",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/study.db",
        "optimized_metric=final_val_loss",
        "hydra.sweeper.direction=minimize",
        "debug=fast",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(4)]
    assert all(s["status"] == "completed" for s in summaries)
    lrs = []
    for i in range(4):
        overrides = yaml.safe_load((sweep / str(i) / ".hydra" / "overrides.yaml").read_text())
        lr = float(next(o for o in overrides if o.startswith("optimizer.lr=")).split("=")[1])
        assert 1e-4 <= lr <= 1e-1
        lrs.append(lr)
    assert len(set(lrs)) == 4
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == min(s["final_val_loss"] for s in summaries)
    study = optuna.load_study(
        study_name="lr_weight_decay", storage=f"sqlite:///{tmp_path}/study.db"
    )
    assert len(study.trials) == 4
    assert "[3] " in result.stdout  # the sweep's report, one line per trial
