"""The comparison (lrlab.analysis) on hand-made run dirs with known numbers (see `JOBS`)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from lrlab.analysis import (
    Comparison,
    compare,
    curve_stats,
    find_run_dirs,
    format_mean_std,
    load_runs,
    mean_std,
    write_report,
)
from tests.helpers.analysis_runs import JOBS, make_sweep, write_run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return make_sweep(tmp_path / "multiruns" / "2026-01-01" / "12-00-00")


def by_label(comparison: Comparison) -> dict[str, dict]:
    return {s["group"]: s for s in comparison.stats()}


def assert_ms(ms, mean: float, std: float, n: int) -> None:
    assert ms is not None
    assert ms[0] == pytest.approx(mean, abs=1e-12)
    if math.isnan(std):
        assert math.isnan(ms[1])
    else:
        assert ms[1] == pytest.approx(std, abs=1e-12)
    assert ms[2] == n


def test_groups_by_everything_but_seed_in_job_order(sweep: Path) -> None:
    c = compare([sweep])
    assert list(c.groups.index) == ["recipe=adam", "recipe=sgd_clr", "recipe=rmsprop"]
    assert c.groups["runs"].tolist() == [3, 3, 2]
    assert (
        c.runs["group"].tolist()
        == ["recipe=adam"] * 3 + ["recipe=sgd_clr"] * 3 + ["recipe=rmsprop"] * 2
    )
    # the shared `experiment=cmp` stays in the key but not in the label
    assert c.groups.loc["recipe=adam", "overrides"] == ("experiment=cmp", "recipe=adam")


def test_exact_means_and_sample_stds(sweep: Path) -> None:
    c = compare([sweep], target=0.75)
    s = by_label(c)
    adam, sgd, rms = s["recipe=adam"], s["recipe=sgd_clr"], s["recipe=rmsprop"]
    assert_ms(adam["final_val_acc"], 0.9, 0.1, 3)
    assert_ms(adam["best_val_acc"], 0.9, 0.1, 3)
    assert_ms(adam["best_epoch"], 3.0, 0.0, 3)
    assert_ms(adam["wall_time_s"], 12.0, 2.0, 3)
    assert_ms(adam["epochs_to_target"], 7 / 3, statistics.stdev([3, 2, 2]), 3)
    assert adam["reached_target"] == 3
    assert adam["status"] == {"completed": 3}
    # the diverged seed is part of its optimizer's statistics
    assert_ms(sgd["final_val_acc"], 0.5, 0.2, 3)
    assert_ms(
        sgd["best_val_acc"], statistics.mean([0.6, 0.7, 0.3]), statistics.stdev([0.6, 0.7, 0.3]), 3
    )
    assert_ms(sgd["best_epoch"], 5 / 3, statistics.stdev([2, 2, 1]), 3)  # ties: first epoch
    assert sgd["epochs_to_target"] is None and sgd["reached_target"] == 0
    assert sgd["status"] == {"completed": 2, "diverged": 1}
    # failed and crashed runs are counted, not averaged
    assert rms["status"] == {"failed": 1, "missing": 1}
    assert rms["runs"] == 2 and rms["final_val_acc"] is None
    # the same numbers in the DataFrames
    assert c.groups.loc["recipe=sgd_clr", "final_val_acc_mean"] == pytest.approx(0.5)
    assert c.groups.loc["recipe=sgd_clr", "final_val_acc_std"] == pytest.approx(0.2)
    assert c.groups.loc["recipe=rmsprop", ["counted", "final_val_acc_n"]].tolist() == [0, 0]
    assert c.runs["best_epoch"].tolist()[3:6] == [2, 2, 1]
    assert c.runs["counted"].tolist() == [True] * 6 + [False] * 2


def test_status_order_and_preempted_runs_are_not_averaged(sweep: Path) -> None:
    for run, status in ((0, "preempted"), (1, "running"), (6, "interrupted")):
        summary_file = sweep / str(run) / "summary.json"
        summary = json.loads(summary_file.read_text())
        summary_file.write_text(json.dumps({**summary, "status": status}))
    s = by_label(compare([sweep], target=0.75))
    assert list(s["recipe=adam"]["status"].items()) == [
        ("completed", 1),
        ("running", 1),
        ("preempted", 1),
    ]
    assert_ms(s["recipe=adam"]["final_val_acc"], 1.0, math.nan, 1)
    assert list(s["recipe=rmsprop"]["status"]) == ["interrupted", "missing"]


def test_mean_std_single_value_and_empty() -> None:
    assert_ms(mean_std([0.5, None]), 0.5, math.nan, 1)
    assert mean_std([None, math.nan]) is None
    assert format_mean_std(mean_std([0.5]), 2) == "0.50"
    assert format_mean_std(mean_std([1.0, 2.0]), 2, n=3) == "1.50 ± 0.71 (n=2)"


def test_curve_stats_per_epoch(sweep: Path) -> None:
    epochs = compare([sweep]).epochs
    sgd = epochs[(epochs["group"] == "recipe=sgd_clr") & epochs["counted"]]
    x, mean, std = curve_stats(sgd, "val_acc")
    assert x.tolist() == [1, 2, 3]
    assert mean.tolist() == pytest.approx([0.4, 0.65, 0.6])
    assert std.tolist() == pytest.approx(
        [0.1, statistics.stdev([0.6, 0.7]), statistics.stdev([0.5, 0.7])]
    )
    # the diverged epoch's NaN loss is skipped, not propagated
    _, loss_mean, _ = curve_stats(sgd, "train_loss")
    assert loss_mean[0] == pytest.approx(1.0)


def test_auto_target_is_90_percent_of_best_group(sweep: Path) -> None:
    c = compare([sweep])
    assert c.target == pytest.approx(0.81) and c.target_auto
    assert compare([sweep], metric="val_loss").target is None


def test_group_by_selected_keys_and_ignore(sweep: Path) -> None:
    by_seed = compare([sweep], by=["seed"])
    assert list(by_seed.groups.index) == ["seed=0", "seed=1", "seed=2"]
    assert by_seed.groups["runs"].tolist() == [3, 3, 2]
    one = compare([sweep], ignore=["seed", "recipe"])
    assert len(one.groups) == 1 and one.groups["runs"].tolist() == [8]


@pytest.mark.parametrize(
    "override", ["trainer.num_threads=1", "trainer.checkpoint_every_n_steps=50",
                 "trainer.resume=auto", "hydra.launcher.n_jobs=2", "hydra/launcher=joblib"]
)  # fmt: skip
def test_run_mechanics_overrides_do_not_split_groups(sweep: Path, override: str) -> None:
    overrides_file = sweep / "0" / ".hydra" / "overrides.yaml"
    overrides_file.write_text(overrides_file.read_text() + f"- {override}\n")
    assert compare([sweep]).groups["runs"].tolist() == [3, 3, 2]


def test_nested_record_files_belong_to_their_run(sweep: Path) -> None:
    nested = sweep / "0" / "extra"
    nested.mkdir()
    (nested / "metrics.jsonl").write_text("")
    assert find_run_dirs([sweep]) == [sweep / str(i) for i in range(len(JOBS))]


def test_run_dirs_given_directly_and_resumed_rows(sweep: Path, tmp_path: Path) -> None:
    run = tmp_path / "single"
    write_run(run, ["seed=3"], "completed", [0.1, 0.2], 1.0)
    with (run / "metrics.jsonl").open("a") as f:  # resumed run repeats epoch 2, then a cut line
        f.write(json.dumps({"type": "epoch", "epoch": 2, "step": 8, "val_acc": 0.3}) + "\n")
        f.write('{"type": "epo')
    c = compare([sweep / "0", sweep / "1", run])
    assert c.groups["runs"].tolist() == [2, 1]
    assert c.groups.index[1] == "(defaults)"
    assert c.runs.loc[2, "final_val_acc"] == 0.3
    assert c.frames.epochs.query("run == 2")["val_acc"].tolist() == [0.1, 0.3]


def test_frames_are_tidy(sweep: Path) -> None:
    frames = load_runs([sweep])
    assert len(frames.runs) == len(JOBS) and frames.runs.index.name == "run"
    assert frames.runs["status"].tolist()[-2:] == ["failed", "missing"]
    assert frames.runs.loc[7, "error"] == "no summary.json"
    assert frames.params["recipe"].tolist()[:4] == ["adam"] * 3 + ["sgd_clr"]
    assert len(frames.epochs) == sum(len(j[2]) for j in JOBS)  # one row per run and epoch
    assert len(frames.steps) == 4 * sum(len(j[2]) for j in JOBS)  # one row per logged step
    # the diverged epoch's NaN loss is NaN, not a string or None
    assert (
        frames.epochs["train_loss"].dtype == float and frames.epochs["train_loss"].isna().sum() == 1
    )


def test_write_report_and_figures(sweep: Path, tmp_path: Path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    out = tmp_path / "out"
    written = write_report(compare([sweep], target=0.75), out)
    md = (out / "report.md").read_text()
    assert "| recipe=sgd_clr | 3 | 2 completed, 1 diverged | 0.5000 ± 0.2000 |" in md
    assert "| recipe=rmsprop | 2 | 1 failed, 1 missing | – | – | – | – | – |" in md
    assert "RuntimeError: boom" in md and "no summary.json" in md
    assert "![curves](curves.png)" in md and "![lr](lr.png)" in md
    data = json.loads((out / "report.json").read_text())  # strict JSON (no NaN)
    assert data["groups"][0]["final_val_acc"] == {
        "mean": pytest.approx(0.9),
        "std": pytest.approx(0.1),
        "n": 3,
    }
    for name in ("curves", "lr"):
        image = plt.imread(written[name])
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400


RECIPES = {
    "sgd_clr": ("torch.optim.SGD", "CLR"),
    "adam": ("torch.optim.Adam", "Constant"),
    "adamax": ("torch.optim.Adamax", "Constant"),
    "adagrad": ("torch.optim.Adagrad", "Constant"),
    "adadelta": ("torch.optim.Adadelta", "Constant"),
    "rmsprop": ("torch.optim.RMSprop", "Constant"),
    "adamw": ("torch.optim.AdamW", "Constant"),
}


@pytest.mark.parametrize("experiment", ["optimizer_comparison", "optimizer_comparison_transfer"])
def test_seed_study_experiments_declare_the_grid(experiment: str) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", [f"experiment={experiment}"], return_hydra_config=True)
        params = cfg.hydra.sweeper.params
        assert params.recipe.split(",") == list(RECIPES) and params.seed == "0,1,2"
        assert cfg.data.name == "flowers"
        if experiment == "optimizer_comparison":
            assert cfg.model._target_ == "lrlab.models.simple_cnn.SimpleCNN"
        else:
            assert cfg.model.name == "resnet34"
        for recipe, (optimizer, scheduler) in RECIPES.items():
            cfg = compose("train", [f"experiment={experiment}", f"recipe={recipe}"])
            schedule = cfg.scheduler._target_.rsplit(".", 1)[-1]
            assert (cfg.optimizer._target_, schedule) == (optimizer, scheduler), recipe


def test_analysis_imports_no_training_code_and_matplotlib_lazily() -> None:
    code = (
        "import sys, lrlab.analysis, lrlab.analysis.cli; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lrlab', 'torch', 'hydra', 'omegaconf', 'matplotlib', 'sklearn'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    allowed = {"lrlab", "lrlab.errors"}
    modules = set(proc.stdout.split())
    assert {m for m in modules if not m.startswith("lrlab.analysis")} <= allowed, modules
