"""Pairwise intervals of the difference of group means (lrlab.analysis.pairwise), checked on
hand-made groups whose answer is known by construction, and their place in the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lrlab.analysis import compare, markdown
from lrlab.analysis.cli import main
from lrlab.analysis.pairwise import pairwise_differences
from lrlab.errors import ConfigError
from tests.helpers.analysis_runs import make_sweep


def frame(groups: dict[str, list[float]]) -> tuple[pd.Series, pd.Series]:
    labels = [g for g, xs in groups.items() for _ in xs]
    values = [x for xs in groups.values() for x in xs]
    return pd.Series(values), pd.Series(pd.Categorical(labels, categories=list(groups)))


def welch_by_hand(a: list[float], b: list[float], confidence: float) -> tuple[float, float]:
    """The textbook Welch interval: standard error and Welch-Satterthwaite degrees of freedom."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf((1 + confidence) / 2, df) * math.sqrt(va + vb)
    d = np.mean(a) - np.mean(b)
    return d - half, d + half


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_welch_interval_is_the_textbook_one(confidence: float) -> None:
    a, b = [0.70, 0.74, 0.75], [0.80, 0.81, 0.86, 0.83]  # unequal sizes and spreads
    row = pairwise_differences(*frame({"a": a, "b": b}), confidence=confidence).iloc[0]
    assert (row["group_a"], row["group_b"], row["n_a"], row["n_b"]) == ("a", "b", 3, 4)
    assert row["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(welch_by_hand(a, b, confidence))
    assert row["p_value"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_separated_groups_resolve_and_overlapping_ones_do_not() -> None:
    table = pairwise_differences(
        *frame({"low": [0.70, 0.71, 0.72], "high": [0.80, 0.81, 0.82], "mid": [0.705, 0.715, 0.73]})
    )
    pairs = {(r.group_a, r.group_b): r for r in table.itertuples()}
    assert list(pairs) == [("low", "high"), ("low", "mid"), ("high", "mid")]  # category order
    assert pairs["low", "high"].resolved and pairs["low", "high"].ci_high < 0
    assert pairs["high", "mid"].resolved and pairs["high", "mid"].ci_low > 0
    low_mid = pairs["low", "mid"]
    assert not low_mid.resolved and low_mid.ci_low < 0 < low_mid.ci_high


def test_more_confidence_widens_the_interval_until_it_no_longer_resolves() -> None:
    # t = 3.2 on 4 degrees of freedom: p = 0.033, resolved at 95% but not at 99%
    groups = frame({"a": [1.0, 2.0, 3.0], "b": [3.61, 4.61, 5.61]})
    at95, at99 = (pairwise_differences(*groups, confidence=c).iloc[0] for c in (0.95, 0.99))
    assert at95["resolved"] and not at99["resolved"]
    assert at99["ci_low"] < at95["ci_low"] and at99["ci_high"] > at95["ci_high"]


def test_bootstrap_interval_is_reproducible_and_within_the_possible_differences() -> None:
    a, b = [0.70, 0.72, 0.74], [0.80, 0.83, 0.86]
    first = pairwise_differences(*frame({"a": a, "b": b}), method="bootstrap").iloc[0]
    again = pairwise_differences(*frame({"a": a, "b": b}), method="bootstrap").iloc[0]
    assert (first["ci_low"], first["ci_high"]) == (again["ci_low"], again["ci_high"])
    # resampled means lie between each sample's min and max
    assert min(a) - max(b) <= first["ci_low"] < first["difference"] < first["ci_high"]
    assert first["ci_high"] <= max(a) - min(b)
    assert first["resolved"] and math.isnan(first["p_value"])


def test_too_few_runs_give_no_interval_and_constant_groups_an_exact_one() -> None:
    table = pairwise_differences(*frame({"one": [0.5], "c1": [0.6, 0.6], "c2": [0.6, 0.6]}))
    pairs = {(r.group_a, r.group_b): r for r in table.itertuples()}
    assert math.isnan(pairs["one", "c1"].ci_low) and not pairs["one", "c1"].resolved
    assert pairs["one", "c1"].difference == pytest.approx(-0.1)
    same = pairs["c1", "c2"]
    assert (same.ci_low, same.ci_high, same.resolved) == (0.0, 0.0, False)
    apart = pairwise_differences(*frame({"x": [0.5, 0.5], "y": [0.6, 0.6]})).iloc[0]
    assert apart["ci_low"] == apart["ci_high"] == pytest.approx(-0.1) and apart["resolved"]


def test_nan_values_are_left_out() -> None:
    values, groups = frame({"a": [0.7, math.nan, 0.72, 0.74], "b": [0.8, 0.81, 0.82]})
    row = pairwise_differences(values, groups).iloc[0]
    assert row["n_a"] == 3 and row["mean_a"] == pytest.approx(0.72)


def test_bad_method_and_confidence_are_config_errors() -> None:
    groups = frame({"a": [1.0, 2.0], "b": [2.0, 3.0]})
    with pytest.raises(ConfigError, match="'ttest' is not one of"):
        pairwise_differences(*groups, method="ttest")
    with pytest.raises(ConfigError, match="confidence must be in"):
        pairwise_differences(*groups, confidence=95)


# Two optimizers x two lrs, 3 seeds each: adam's final val_acc is 0.10 above sgd's at either lr
# (and the lrs differ by 0.005), so grouping by optimizer resolves, grouping by lr does not.
GRID = [
    ([f"optimizer={opt}", f"optimizer.lr={lr}", f"seed={s}"], "completed",
     [0.5, base + 0.005 * (lr == "0.01") + 0.01 * s], 1.0)
    for opt, base in (("adam", 0.80), ("sgd", 0.70)) for lr in ("0.001", "0.01") for s in range(3)
]  # fmt: skip


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    return make_sweep(tmp_path / "grid", GRID)


def test_any_grouping_gets_its_pairs(grid: Path) -> None:
    by_opt = compare([grid], by=["optimizer"]).pairwise()
    assert by_opt[["group_a", "group_b"]].values.tolist() == [["optimizer=adam", "optimizer=sgd"]]
    assert by_opt.at[0, "difference"] == pytest.approx(0.10) and by_opt.at[0, "resolved"]
    by_lr = compare([grid], by=["optimizer.lr"]).pairwise()
    assert by_lr.at[0, "difference"] == pytest.approx(-0.005) and not by_lr.at[0, "resolved"]
    every = compare([grid]).pairwise()  # all overrides but the seed: 4 groups, 6 pairs
    assert len(every) == 6 and every["n_a"].eq(3).all()
    best = compare([grid], by=["optimizer"]).pairwise(column="best_val_acc")
    assert best.at[0, "difference"] == pytest.approx(0.10)
    with pytest.raises(ConfigError, match="no per-run column 'final_loss'"):
        compare([grid]).pairwise(column="final_loss")


def test_report_shows_the_pairs_in_markdown_json_and_stdout(grid: Path, capsys) -> None:
    assert main([str(grid), "--by", "optimizer", "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "| optimizer=adam | optimizer=sgd | 6 / 6 | +0.1000 |" in printed
    md = (grid / "report.md").read_text()
    assert "## Pairwise differences of the final `val_acc`" in md
    assert "| optimizer=adam | optimizer=sgd | 6 / 6 | +0.1000 |" in md and "| yes |" in md
    pairs = json.loads((grid / "report.json").read_text())["pairwise"]
    assert pairs["method"] == "welch" and pairs["confidence"] == 0.95
    assert pairs["pairs"][0]["resolved"] is True and pairs["pairs"][0]["n_a"] == 6
    assert main([str(grid), "--by", "optimizer", "--no-figures", "--pairwise", "none"]) == 0
    assert "Pairwise" not in (grid / "report.md").read_text()
    assert "pairwise" not in json.loads((grid / "report.json").read_text())
    assert "Pairwise" not in markdown(compare([grid]), pairwise=None)


def test_bad_confidence_on_the_command_line_is_a_one_line_error(grid: Path, capsys) -> None:
    assert main([str(grid), "--confidence", "95"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --confidence must be in (0, 1), got 95.0"
    assert not (grid / "report.md").exists()
