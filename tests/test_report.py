"""The comparison report on hand-made run dirs with known numbers (see `make_sweep`)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from lrlab import report

ROOT = Path(__file__).resolve().parents[1]

# (overrides, status, val_acc per epoch, wall time); job numbers are the list positions.
JOBS = [
    (["recipe=adam", "seed=0"], "completed", [0.5, 0.7, 0.8], 10.0),
    (["recipe=adam", "seed=1"], "completed", [0.6, 0.8, 0.9], 12.0),
    (["recipe=adam", "seed=2"], "completed", [0.7, 0.9, 1.0], 14.0),
    (["recipe=sgd_clr", "seed=0"], "completed", [0.4, 0.6, 0.5], 20.0),
    (["recipe=sgd_clr", "seed=1"], "completed", [0.5, 0.7, 0.7], 22.0),
    (["recipe=sgd_clr", "seed=2"], "diverged", [0.3], 5.0),
    (["recipe=rmsprop", "seed=0"], "failed", [], 1.0),
    (["recipe=rmsprop", "seed=1"], None, [0.2, 0.25], None),  # hard crash: no summary.json
]


LR0 = {"recipe=adam": 1e-3, "recipe=sgd_clr": 1e-2}


def write_run(
    run_dir: Path,
    overrides: list[str],
    status: str | None,
    val_acc: list[float],
    wall: float | None,
    steps_per_epoch: int = 4,
) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    lr0 = next((v for k, v in LR0.items() if k in overrides), 1e-4)
    rows = []
    for e, acc in enumerate(val_acc, start=1):
        for s in range(1, steps_per_epoch + 1):
            step = (e - 1) * steps_per_epoch + s
            lr = lr0 * (1 + s / steps_per_epoch)
            rows.append(
                {"type": "step", "step": step, "epoch": e - 1 + s / steps_per_epoch,
                 "train_loss": 1.0 / step, "lr": lr, "lr_groups": [lr], "momentum": 0.9}
            )  # fmt: skip
        diverged_now = status == "diverged" and e == len(val_acc)
        rows.append(
            {"type": "epoch", "epoch": e, "step": e * steps_per_epoch,
             "train_loss": math.nan if diverged_now else 1.0 / e, "train_acc": acc + 0.05,
             "val_loss": 2.0 / e, "val_acc": acc, "epoch_time_s": 1.0, "lr": lr0}
        )  # fmt: skip
    # json.dumps writes NaN as the trainer would for a diverged loss
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if status is None:
        return
    best = max(val_acc) if val_acc else None
    summary = {
        "status": status,
        "error": "RuntimeError: boom" if status == "failed" else None,
        "final_val_acc": val_acc[-1] if val_acc else None,
        "best_val_acc": best,
        "best_epoch": val_acc.index(best) + 1 if val_acc else None,
        "epochs_completed": len(val_acc),
        "steps": len(val_acc) * steps_per_epoch,
        "wall_time_s": wall,
        "seed": int(overrides[-1].split("=")[1]),
        "overrides": overrides,
        "versions": {},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A multirun dir like Hydra's: multirun.yaml plus numbered job dirs (10 sorts after 9)."""
    root = tmp_path / "multiruns" / "2026-01-01" / "12-00-00"
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    for num, (overrides, status, accs, wall) in enumerate(JOBS):
        write_run(root / str(num), ["experiment=cmp", *overrides], status, accs, wall)
    return root


def by_label(comparison: report.Comparison) -> dict[str, dict]:
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
    c = report.compare([sweep])
    assert [g.label for g in c.groups] == ["recipe=adam", "recipe=sgd_clr", "recipe=rmsprop"]
    assert [len(g.runs) for g in c.groups] == [3, 3, 2]
    # the shared `experiment=cmp` stays in the key but not in the label
    assert c.groups[0].key == ("experiment=cmp", "recipe=adam")


def test_exact_means_and_sample_stds(sweep: Path) -> None:
    s = by_label(report.compare([sweep], target=0.75))
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


def test_mean_std_single_value_and_empty() -> None:
    assert_ms(report.mean_std([0.5, None]), 0.5, math.nan, 1)
    assert report.mean_std([None, math.nan]) is None
    assert report.format_mean_std(report.mean_std([0.5]), 2) == "0.50"
    assert report.format_mean_std(report.mean_std([1.0, 2.0]), 2, n=3) == "1.50 ± 0.71 (n=2)"


def test_curve_stats_per_epoch(sweep: Path) -> None:
    sgd = report.compare([sweep]).groups[1]
    epochs, mean, std = report.curve_stats(sgd.counted_runs, "val_acc")
    assert epochs.tolist() == [1, 2, 3]
    assert mean.tolist() == pytest.approx([0.4, 0.65, 0.6])
    assert std.tolist() == pytest.approx(
        [0.1, statistics.stdev([0.6, 0.7]), statistics.stdev([0.5, 0.7])]
    )
    # the diverged epoch's NaN loss is skipped, not propagated
    _, loss_mean, _ = report.curve_stats(sgd.counted_runs, "train_loss")
    assert loss_mean[0] == pytest.approx(1.0)


def test_auto_target_is_90_percent_of_best_group(sweep: Path) -> None:
    c = report.compare([sweep])
    assert c.target == pytest.approx(0.81) and c.target_auto
    assert report.compare([sweep], metric="val_loss").target is None


def test_group_by_selected_keys_and_ignore(sweep: Path) -> None:
    by_seed = report.compare([sweep], by=["seed"])
    assert [g.label for g in by_seed.groups] == ["seed=0", "seed=1", "seed=2"]
    assert [len(g.runs) for g in by_seed.groups] == [3, 3, 2]
    one = report.compare([sweep], ignore=["seed", "recipe"])
    assert len(one.groups) == 1 and len(one.groups[0].runs) == 8


def test_nested_record_files_belong_to_their_run(sweep: Path) -> None:
    nested = sweep / "0" / "extra"
    nested.mkdir()
    (nested / "metrics.jsonl").write_text("")
    assert report.find_run_dirs([sweep]) == [sweep / str(i) for i in range(len(JOBS))]


def test_run_dirs_given_directly_and_resumed_rows(sweep: Path, tmp_path: Path) -> None:
    run = tmp_path / "single"
    write_run(run, ["seed=3"], "completed", [0.1, 0.2], 1.0)
    with (run / "metrics.jsonl").open("a") as f:  # resumed run repeats epoch 2, then a cut line
        f.write(json.dumps({"type": "epoch", "epoch": 2, "step": 8, "val_acc": 0.3}) + "\n")
        f.write('{"type": "epo')
    c = report.compare([sweep / "0", sweep / "1", run])
    assert [len(g.runs) for g in c.groups] == [2, 1]
    assert c.groups[1].label == "(defaults)"
    assert c.groups[1].runs[0].final("val_acc") == 0.3


def test_write_report_and_figures(sweep: Path, tmp_path: Path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    out = tmp_path / "out"
    written = report.compare([sweep], target=0.75).write(out)
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


def test_compare_script(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), str(sweep), "--out", str(out),
         "--target", "0.75", "--no-figures"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "| recipe=adam | 3 | 3 completed | 0.9000 ± 0.1000 | 0.9000 ± 0.1000 |" in proc.stdout
    assert "2.3 ± 0.6 (3/3 reached)" in proc.stdout
    assert (out / "report.md").is_file() and not (out / "curves.png").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), str(empty)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "no run records" in proc.stderr


RECIPES = {
    "sgd_clr": ("torch.optim.SGD", "clr"),
    "adam": ("torch.optim.Adam", "constant"),
    "adamax": ("torch.optim.Adamax", "constant"),
    "adagrad": ("torch.optim.Adagrad", "constant"),
    "adadelta": ("torch.optim.Adadelta", "constant"),
    "rmsprop": ("torch.optim.RMSprop", "constant"),
    "adamw": ("torch.optim.AdamW", "constant"),
}


@pytest.mark.parametrize("experiment", ["optimizer_comparison", "optimizer_comparison_transfer"])
def test_seed_study_experiments_declare_the_grid(experiment: str) -> None:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", [f"experiment={experiment}"], return_hydra_config=True)
        params = cfg.hydra.sweeper.params
        assert params.recipe.split(",") == list(RECIPES) and params.seed == "0,1,2"
        assert cfg.data.name == "flowers"
        assert cfg.model.name == (
            "simple_cnn" if experiment == "optimizer_comparison" else "resnet34"
        )
        for recipe, (optimizer, scheduler) in RECIPES.items():
            cfg = compose("train", [f"experiment={experiment}", f"recipe={recipe}"])
            assert (cfg.optimizer._target_, cfg.scheduler.name) == (optimizer, scheduler), recipe


@pytest.mark.slow  # a real 4-job sweep (digits, a few batches each), then the script
def test_tiny_real_multirun_then_report(tmp_path: Path) -> None:
    from conftest import run_cli

    sweep = tmp_path / "sweep"
    proc = run_cli(
        "train.py", "-m", "experiment=optimizer_comparison", "data=digits", "data.image_size=8",
        "debug=fast", "recipe=sgd_clr,adam", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), str(sweep)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    finals = {"recipe=sgd_clr": [], "recipe=adam": []}
    for job in range(4):
        summary = json.loads((sweep / str(job) / "summary.json").read_text())
        finals[summary["overrides"][0]].append(summary["final_val_acc"])
    for label, values in finals.items():
        cell = f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"
        assert f"| {label} | 2 | 2 completed | {cell} |" in proc.stdout
    assert (sweep / "report.md").read_text().count("| completed |") == 4
    plt = pytest.importorskip("matplotlib.pyplot")
    for name in ("curves.png", "lr.png"):
        assert plt.imread(sweep / name).shape[1] > 400
