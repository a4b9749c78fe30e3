"""A reference's per-epoch values (`val_acc@N` columns; the seed study's 10/30/50/150): read,
set beside the measured means at the same epochs, and drawn on the accuracy curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lrlab.analysis import compare, read_reference
from lrlab.analysis.cli import main
from lrlab.analysis.reference import beside_epochs, reference_curves
from lrlab.errors import ConfigError
from tests.helpers.analysis_runs import make_sweep

ROOT = Path(__file__).resolve().parents[2]
SEED_STUDY = ROOT / "benchmarks" / "reference" / "seed_study.csv"
# (epoch 10, 30, 50, final at 150) per recipe, from the issue text (the seed's training logs)
SEED_CURVES = {
    "recipe=adam": [0.590, 0.726, 0.760, 0.815],
    "recipe=sgd_clr": [0.639, 0.736, 0.789, 0.813],
    "recipe=adadelta": [0.607, 0.716, 0.776, 0.779],
    "recipe=adamax": [0.582, 0.661, 0.725, 0.792],
    "recipe=rmsprop": [0.435, 0.425, 0.545, 0.719],
    "recipe=adagrad": [0.559, 0.608, 0.627, 0.683],
}


def accs(seed: int, epochs: int = 12) -> list[float]:
    """val_acc = 0.5 + 0.02 * epoch + 0.01 * seed: the mean at epoch 10 is 0.71 (seeds 0-2)."""
    return [0.5 + 0.02 * e + 0.01 * seed for e in range(1, epochs + 1)]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    jobs = [(["recipe=adam", f"seed={s}"], "completed", accs(s), 1.0) for s in range(3)]
    jobs += [(["recipe=sgd_clr", f"seed={s}"], "completed", accs(s, 8), 1.0) for s in range(2)]
    jobs += [(["recipe=adamw", "seed=0"], "completed", accs(0), 1.0)]  # no reference row
    return make_sweep(tmp_path / "sweep", jobs)


def test_the_seed_study_file_holds_the_seeds_curves() -> None:
    ref = read_reference(SEED_STUDY)
    got = {g: p["value"].tolist() for g, p in ref.points.groupby("group", sort=False)}
    assert got == SEED_CURVES
    assert set(ref.points["epoch"]) == {10, 30, 50, 150}  # the final counts at `epochs`
    assert ref.digits == 3 and "TDehaene/blogposts" in " ".join(ref.notes)


def test_measured_means_beside_the_reference_at_its_epochs(sweep: Path) -> None:
    table = beside_epochs(compare([sweep]), read_reference(SEED_STUDY)).set_index(
        ["group", "epoch"]
    )
    adam = table.loc["recipe=adam"]
    assert adam.index.tolist() == [10, 30, 50, 150]
    assert adam.at[10, "measured"] == pytest.approx(0.71)  # (0.70 + 0.71 + 0.72) / 3
    assert adam.at[10, "measured_std"] == pytest.approx(0.01)
    assert adam.at[10, "delta"] == pytest.approx(0.71 - 0.590)
    assert adam.loc[[30, 50, 150], "measured_n"].eq(0).all()  # the runs stop at epoch 12
    assert np.isnan(adam.at[30, "measured"]) and np.isnan(adam.at[30, "delta"])
    # sgd_clr's runs end at epoch 8: nothing measured at 10
    assert table.loc["recipe=sgd_clr"]["measured_n"].eq(0).all()
    assert "recipe=adamw" not in table.index.get_level_values("group")


def test_the_command_prints_and_writes_the_epoch_table(sweep: Path, capsys) -> None:
    assert main([str(sweep), "--reference", str(SEED_STUDY)]) == 0
    row = "| recipe=adam | 10 | 0.590 | 0.7100 ± 0.0100 | +0.1200 |"
    assert row in capsys.readouterr().out
    md = (sweep / "report.md").read_text()
    assert "At the reference's epochs" in md and row in md
    at_epochs = json.loads((sweep / "report.json").read_text())["reference"]["at_epochs"]
    assert at_epochs[0] == {"group": "recipe=adam", "epoch": 10, "reference": 0.59,
                            "measured": pytest.approx(0.71), "measured_std": pytest.approx(0.01),
                            "measured_n": 3, "delta": pytest.approx(0.12)}  # fmt: skip
    assert (sweep / "curves.png").stat().st_size > 0


def test_the_curves_carry_the_reference_points(sweep: Path) -> None:
    c = compare([sweep])
    points = reference_curves(c, read_reference(SEED_STUDY))
    assert list(points) == ["recipe=adam", "recipe=sgd_clr"]  # matched groups only
    fig = c.curves_figure(metrics=["train_acc", "val_acc"], reference_points=points)
    train_ax, val_ax = fig.axes[:2]
    drawn = [tuple(xy) for xy in scatter_points(val_ax).round(3)]
    # within the runs' 12 epochs only epoch 10; the final (epoch 150) at the right edge
    assert sorted(drawn) == sorted([(10, 0.59), (12.5, 0.815), (10, 0.639), (12.5, 0.813)])
    assert scatter_points(train_ax).size == 0
    assert "reference" in val_ax.get_title() and "reference" not in train_ax.get_title()


def scatter_points(ax) -> np.ndarray:
    from matplotlib.collections import PathCollection  # scatter, not the ±std bands

    offsets = [c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)]
    return np.concatenate([np.empty((0, 2)), *(o for o in offsets if len(o))])


def test_a_bad_per_epoch_value_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("group,final_val_acc,best_val_acc,val_acc@10,epochs\nrecipe=adam,0.8,0.8,x,20\n")
    with pytest.raises(ConfigError, match="val_acc@10 'x' is no number"):
        read_reference(bad)
    plain = tmp_path / "plain.csv"
    plain.write_text("group,final_val_acc,best_val_acc,epochs\nrecipe=adam,0.8,0.8,20\n")
    assert read_reference(plain).points.empty  # no per-epoch columns: no points
