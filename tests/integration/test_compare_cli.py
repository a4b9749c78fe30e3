"""The compare command (`lrlab-compare`, `python -m lrlab.analysis`, scripts/compare.py):
reference tables, grouping of hyper-parameter searches and the metric-vs-parameter plot."""

from __future__ import annotations

import importlib.metadata
import io
import json
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from lrlab.analysis import compare, markdown, read_reference
from lrlab.analysis.cli import main
from lrlab.errors import ConfigError
from tests.helpers.analysis_runs import make_sweep, write_run

ROOT = Path(__file__).resolve().parents[2]
SEED_STUDY = ROOT / "benchmarks" / "reference" / "seed_study.csv"

# (overrides, status, val_acc per epoch, wall time): three recipes of the seed study and AdamW
RECIPE_JOBS = [
    (["recipe=adam", "seed=0"], "completed", [0.5, 0.7, 0.8], 10.0),
    (["recipe=adam", "seed=1"], "completed", [0.6, 0.8, 0.9], 12.0),
    (["recipe=sgd_clr", "seed=0"], "completed", [0.4, 0.6, 0.5], 20.0),
    (["recipe=sgd_clr", "seed=1"], "diverged", [0.3], 5.0),
    (["recipe=rmsprop", "seed=0"], "failed", [], 1.0),
    (["recipe=adamw", "seed=0"], "completed", [0.7, 0.75], 9.0),
]

# An Optuna-like search: every job its own lr and weight decay; job 6 keeps the default optimizer
# (no `optimizer=` override) and job 3 diverged at the highest lr.
SEARCH = [
    ("adam", "0.0001", "1e-05", "completed", [0.50, 0.60]),
    ("adam", "0.001", "0.0001", "completed", [0.70, 0.90]),
    ("adam", "0.01", "1e-05", "completed", [0.60, 0.65]),
    ("sgd", "1.0", "0.0001", "diverged", [0.20]),
    ("sgd", "0.1", "1e-05", "completed", [0.55, 0.80]),
    ("sgd", "0.003", "0.0001", "completed", [0.30, 0.40]),
    (None, "0.002", "1e-05", "completed", [0.60, 0.70]),
]


def run_compare(*args: str) -> subprocess.CompletedProcess:
    """`lrlab-compare <args>` run in this process (its `main`, as the console script and
    `python -m lrlab.analysis` call it): exit status, stdout and stderr. The scripts/ wrapper
    and the installed script run as real processes below."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse: --help, usage errors
            code = e.code if isinstance(e.code, int) else 0
    return subprocess.CompletedProcess(
        ["lrlab-compare", *args], code, out.getvalue(), err.getvalue()
    )


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    return make_sweep(
        tmp_path / "recipes", RECIPE_JOBS, prefix=("experiment=optimizer_comparison",)
    )


@pytest.fixture
def search(tmp_path: Path) -> Path:
    root = tmp_path / "search"
    for num, (optimizer, lr, wd, status, accs) in enumerate(SEARCH):
        overrides = [f"optimizer.lr={lr}", f"optimizer.weight_decay={wd}", "seed=0"]
        overrides = [f"optimizer={optimizer}", *overrides] if optimizer else overrides
        write_run(root / str(num), overrides, status, accs, 1.0)
    return root


def test_scripts_compare_is_the_same_command(recipes: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), str(recipes), "--out", str(out),
         "--target", "0.75", "--no-figures"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "| recipe=adam | 2 | 2 completed | 0.8500 ± 0.0707 | 0.8500 ± 0.0707 |" in proc.stdout
    assert "2.5 ± 0.7 (2/2 reached)" in proc.stdout
    assert (out / "report.md").is_file() and not (out / "curves.png").exists()
    assert "sys.path" not in (ROOT / "scripts" / "compare.py").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), str(empty)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "no run records" in proc.stderr


def test_console_script_is_declared_and_runs(recipes: Path, tmp_path: Path) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert pkgutil.resolve_name(scripts["lrlab-compare"].replace(":", ".")) is main
    proc = run_compare(str(recipes), "--out", str(tmp_path / "m"), "--no-figures")
    assert proc.returncode == 0, proc.stderr
    assert "| recipe=adamw | 1 | 1 completed | 0.7500 |" in proc.stdout
    assert "usage: lrlab-compare" in run_compare("--help").stdout


def test_installed_console_script(recipes: Path, tmp_path: Path) -> None:
    names = {e.name for e in importlib.metadata.entry_points(group="console_scripts")}
    script = shutil.which("lrlab-compare", path=str(Path(sys.executable).parent))
    if "lrlab-compare" not in names or script is None:
        pytest.skip("lrlab-compare not installed: `pip install -e .` (make setup) installs it")
    proc = subprocess.run(
        [script, str(recipes), "--out", str(tmp_path / "s"), "--no-figures"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| recipe=adam | 2 | 2 completed |" in proc.stdout


def test_seed_study_reference_file() -> None:
    ref = read_reference(SEED_STUDY)
    text = " ".join(ref.notes)
    assert "Flowers Recognition" in text and "150 epochs" in text and "issue #13" in text
    table = ref.rows.set_index("group")[["final", "best"]]
    assert table.to_dict("index") == {
        "recipe=adam": {"final": 0.815, "best": 0.830},
        "recipe=sgd_clr": {"final": 0.813, "best": 0.822},
        "recipe=adamax": {"final": 0.792, "best": 0.808},
        "recipe=adadelta": {"final": 0.779, "best": 0.831},
        "recipe=rmsprop": {"final": 0.719, "best": 0.727},
        "recipe=adagrad": {"final": 0.683, "best": 0.694},
    }


def test_reference_table_beside_the_measured_one(recipes: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref"
    proc = run_compare(str(recipes), "--reference", str(SEED_STUDY), "--out", str(out),
                       "--no-figures")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    header = "| group | reference final | reference best | measured final | measured best | delta |"
    expected = [
        header,
        "| --- | --- | --- | --- | --- | --- |",
        "| recipe=adam | 0.815 | 0.830 | 0.8500 ± 0.0707 | 0.8500 ± 0.0707 | +0.0350 |",
        # the diverged seed counts: final (0.5 + 0.3) / 2
        "| recipe=sgd_clr | 0.813 | 0.822 | 0.4000 ± 0.1414 | 0.4500 ± 0.2121 | -0.4130 |",
        "| recipe=rmsprop | 0.719 | 0.727 | – | – | – |",  # no counted run
        "| recipe=adamw | – | – | 0.7500 | 0.7500 | – |",  # no reference row
        "| recipe=adamax | 0.792 | 0.808 | – | – | – |",  # not measured
        "| recipe=adadelta | 0.779 | 0.831 | – | – | – |",
        "| recipe=adagrad | 0.683 | 0.694 | – | – | – |",
    ]
    printed = proc.stdout.splitlines()
    start = printed.index(header)
    assert printed[start : start + len(expected)] == expected
    md = (out / "report.md").read_text()
    assert "## Against the reference" in md and "\n".join(expected) in md
    assert "Flowers Recognition" in md
    data = json.loads((out / "report.json").read_text())
    adam = data["reference"]["rows"][0]
    assert adam["group"] == "recipe=adam" and adam["delta"] == pytest.approx(0.035)
    assert data["reference"]["rows"][3]["reference_final"] is None  # strict JSON: null


def test_reference_matches_groups_by_their_overrides(tmp_path: Path) -> None:
    jobs = [(["+recipe=adam", f"data.image_size={s}", "seed=0"], "completed", [0.8], 1.0)
            for s in (32, 64)]  # fmt: skip
    sweep = make_sweep(tmp_path / "sizes", jobs, prefix=())
    ref_file = tmp_path / "ref.csv"
    ref_file.write_text("group,final_val_acc,best_val_acc\nrecipe=adam,0.5,0.6\n")
    from lrlab.analysis.reference import beside

    table = beside(compare([sweep]), read_reference(ref_file))
    assert table["group"].tolist() == ["data.image_size=32", "data.image_size=64"]
    assert table["reference_final"].tolist() == [0.5, 0.5]
    assert table["delta"].tolist() == pytest.approx([0.3, 0.3])


def test_bad_reference_files_are_one_line_errors(recipes: Path, tmp_path: Path) -> None:
    proc = run_compare(str(recipes), "--reference", str(tmp_path / "nope.csv"))
    assert proc.returncode == 2 and proc.stderr.strip().endswith("nope.csv")
    assert "reference file not found" in proc.stderr
    proc = run_compare(str(recipes), "--reference", str(SEED_STUDY), "--metric", "val_loss")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "no column final_val_loss, best_val_loss" in proc.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("group,final_val_acc,best_val_acc\nrecipe=adam,high,0.5\n")
    with pytest.raises(ConfigError, match="final_val_acc 'high' is no number"):
        read_reference(bad)
    assert not (recipes / "report.md").exists()  # nothing written on an error


def test_by_groups_a_search_and_shows_the_searched_parameters(search: Path) -> None:
    c = compare([search], by=["optimizer"])
    assert list(c.groups.index) == [
        "optimizer=adam",
        "optimizer=sgd",
        "optimizer=(default)",  # a job without the key
    ]
    assert c.groups["runs"].tolist() == [3, 3, 1]
    assert c.params == ["optimizer.lr", "optimizer.weight_decay"]
    assert c.runs["optimizer.lr"].tolist() == [0.0001, 0.001, 0.01, 1.0, 0.1, 0.003, 0.002]
    md = markdown(c)
    assert "Searched parameters (they vary within groups): `optimizer.lr`" in md
    best = md.split("## Best run per group")[1].split("## Runs")[0]
    assert (
        "| optimizer=adam | 1 | 0.9000 | optimizer.lr=0.001, optimizer.weight_decay=0.0001 |"
        in best
    )
    assert "| optimizer=sgd | 4 | 0.8000 | optimizer.lr=0.1, optimizer.weight_decay=1e-05 |" in best
    assert "| 3 | optimizer=sgd | 0 | diverged |" in md  # the runs table lists every trial
    # without --by every trial is its own group
    assert len(compare([search]).groups) == len(SEARCH)


def test_plot_vs_a_searched_parameter(search: Path, tmp_path: Path) -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    out = tmp_path / "plots"
    proc = run_compare(str(search), "--by", "optimizer", "--plot-vs", "optimizer.lr",
                       "--plot-vs", "optimizer.weight_decay", "--out", str(out), "--no-figures")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("best_val_acc_vs_optimizer.lr.png", "best_val_acc_vs_optimizer.weight_decay.png"):
        assert plt.imread(out / name).shape[1] > 400
        assert f"]({name})" in (out / "report.md").read_text()
    assert not (out / "curves.png").exists()

    c = compare([search], by=["optimizer"])
    fig = c.vs_figure("optimizer.lr")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # 1e-4 .. 1: four decades
    points = {coll.get_label(): coll.get_offsets().tolist() for coll in ax.collections}
    assert points["optimizer=adam"] == [[0.0001, 0.6], [0.001, 0.9], [0.01, 0.65]]
    assert points["optimizer=sgd (diverged)"] == [[1.0, 0.2]]
    assert points["optimizer=(default)"] == [[0.002, 0.7]]
    final = c.vs_figure("optimizer.lr", value="final").axes[0]
    assert final.collections[0].get_offsets().tolist()[0] == [0.0001, 0.6]
    assert final.get_ylabel() == "final val acc"


def test_plot_vs_linear_axis_and_bad_keys(search: Path, tmp_path: Path) -> None:
    narrow = compare([search / "1", search / "2", search / "5"], by=["optimizer"])
    assert narrow.runs["optimizer.lr"].tolist() == [0.001, 0.01, 0.003]  # one decade
    assert narrow.vs_figure("optimizer.lr").axes[0].get_xscale() == "linear"
    c = compare([search], by=["optimizer"])
    with pytest.raises(ConfigError, match="no run overrides 'optimizer.momentum'"):
        c.vs_figure("optimizer.momentum")
    with pytest.raises(ConfigError, match="no run has a numeric value for 'optimizer'"):
        c.vs_figure("optimizer")
    out = tmp_path / "none"
    proc = run_compare(str(search), "--plot-vs", "optimizer.momentum", "--out", str(out))
    assert proc.returncode == 2 and "optimizer.momentum" in proc.stderr
    assert not out.exists()  # nothing written


def test_seed_study_reference_names_the_comparison_recipes() -> None:
    rows = read_reference(SEED_STUDY).rows
    also = [g.strip() for cell in rows["also"].dropna() for g in cell.split(";")]
    groups = [*rows["group"], *(g for g in also if g.startswith("recipe="))]  # + sgd_clr_seed
    recipes = [p.stem for p in (ROOT / "conf" / "recipe").glob("*.yaml")]
    not_in_the_seed = ("adamw", "adam_then_sgd")  # lrlab's additions (adam_then_sgd: issue 12)
    assert sorted(groups) == sorted(f"recipe={r}" for r in recipes if r not in not_in_the_seed)
    # experiment=optimizer_comparison_tuned's groups: its optimizers but AdamW, one row each
    tuned = [g.removeprefix("optimizer=") for g in also if g.startswith("optimizer=")]
    sweep = yaml.safe_load((ROOT / "conf/experiment/optimizer_comparison_tuned.yaml").read_text())
    swept = sweep["hydra"]["sweeper"]["params"]["optimizer"].split(",")
    assert sorted(tuned) == sorted(o for o in swept if o != "adamw")
