"""`compare()`: load runs, group them and compute the per-run and per-group numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lrlab.analysis import stats
from lrlab.analysis.runs import RunFrames, load_runs
from lrlab.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Comparison:
    """Runs grouped for a report (see `compare`).

    - `runs`: one row per run (index `run`): `name` (path below its source dir), `group`
      (categorical, in group order), `status`, `counted` (completed or diverged), `seed`,
      `epochs`, `final_<metric>`, `best_<metric>`, `best_epoch`, `epochs_to_target` (with a
      target), `wall_time_s`, `error`, then one column per searched parameter.
    - `groups`: one row per group (index: its label): `overrides` (the full key), `runs`,
      `counted`, `status`, and `<x>_mean`, `<x>_std` (ddof=1), `<x>_n` over the counted runs for
      x in `final_<metric>`, `best_<metric>`, `best_epoch`, `wall_time_s` and
      `epochs_to_target`, plus `reached_target`.
    - `epochs`, `steps`: the records' epoch and step rows with `group`, `status` and `counted`.
    - `frames`: everything as loaded (`runs` with every summary field, `params`: overrides).
    """

    frames: RunFrames
    runs: pd.DataFrame
    groups: pd.DataFrame
    metric: str = "val_acc"
    target: float | None = None
    target_auto: bool = False
    sources: list[str] = field(default_factory=list)
    by: Sequence[str] | None = None
    ignore: Sequence[str] = stats.DEFAULT_IGNORE
    params: list[str] = field(default_factory=list)  # searched parameters (with `by`)

    @property
    def epochs(self) -> pd.DataFrame:
        return self._with_group(self.frames.epochs)

    @property
    def steps(self) -> pd.DataFrame:
        return self._with_group(self.frames.steps)

    def stats(self) -> list[dict[str, Any]]:
        """The group statistics as plain data (report.json's `groups`)."""
        out = []
        for label, g in self.groups.iterrows():
            runs = self.runs[self.runs["group"] == label]
            row = {
                "group": label,
                "overrides": list(g["overrides"]),
                "runs": int(g["runs"]),
                "status": stats.status_counts(runs["status"]),
            }
            for column in self.stat_columns:
                row[column] = _mean_std(g, column)
            if self.target is not None:
                row["reached_target"] = int(g["reached_target"])
            out.append(row)
        return out

    @property
    def stat_columns(self) -> list[str]:
        m = self.metric
        columns = [f"final_{m}", f"best_{m}", "best_epoch", "wall_time_s"]
        columns += ["epochs_to_target"] if self.target is not None else []
        return columns + (["test_acc"] if "test_acc" in self.runs else [])

    def pairwise(
        self, column: str | None = None, confidence: float = 0.95, method: str = "welch"
    ) -> pd.DataFrame:
        """Every pair of groups: difference of the mean `column` (default `final_<metric>`)
        over their counted runs, its confidence interval and whether it excludes 0
        (`lrlab.analysis.pairwise`)."""
        from lrlab.analysis.pairwise import pairwise_differences

        column = column or f"final_{self.metric}"
        if column not in self.runs:
            raise ConfigError(f"no per-run column {column!r} (have: {', '.join(self.runs)})")
        counted = self.runs[self.runs["counted"]]
        return pairwise_differences(counted[column], counted["group"], confidence, method)

    def curves_figure(
        self,
        metrics: Sequence[str] | None = None,
        reference_points: dict[str, pd.DataFrame] | None = None,
    ) -> Figure:
        """Mean ± std curves per group; `reference_points` ({group: `epoch`, `value`}, from
        `lrlab.analysis.reference.reference_curves`) drawn on the metric's panel."""
        from lrlab.analysis import figures

        counted = self.epochs[self.epochs["counted"]]
        return figures.curves_figure(
            counted, metrics or figures.CURVE_METRICS, reference_points, self.metric
        )

    def lr_figure(self) -> Figure | None:
        from lrlab.analysis import figures

        return figures.lr_figure(
            self.steps[self.steps["counted"]], self.epochs[self.epochs["counted"]]
        )

    def vs_figure(self, param: str, value: str = "best") -> Figure:
        """`<value>_<metric>` of each counted run against the numeric override `param`."""
        from lrlab.analysis import figures

        if value not in ("best", "final"):
            raise ConfigError(f"plot value must be 'best' or 'final', got {value!r}")
        if param not in self.frames.params:
            raise ConfigError(f"no run overrides {param!r} (overridden: {self._override_keys()})")
        x = pd.to_numeric(self.frames.params[param], errors="coerce")
        if x.notna().sum() == 0:
            raise ConfigError(f"no run has a numeric value for {param!r}")
        points = self.runs.assign(**{param: x})
        return figures.vs_figure(points[points["counted"]], param, f"{value}_{self.metric}")

    def _with_group(self, frame: pd.DataFrame) -> pd.DataFrame:
        columns = self.runs[["group", "status", "counted"]]
        return frame.join(columns, on="run")

    def _override_keys(self) -> str:
        return ", ".join(self.frames.params.columns) or "none"


def compare(
    paths: Iterable[str | Path],
    metric: str = "val_acc",
    by: Sequence[str] | None = None,
    ignore: Sequence[str] = stats.DEFAULT_IGNORE,
    target: float | None = None,
) -> Comparison:
    """Load the runs under `paths` and group them (by `by` only, else by every override but
    `ignore`); `target=None` picks one automatically (90% of the best group's mean best)."""
    sources = [str(p) for p in paths]
    frames = load_runs(sources)
    if frames.runs.empty:
        raise FileNotFoundError(f"no run records (summary.json/metrics.jsonl) under {sources}")
    keys = stats.group_keys(frames.runs["overrides"], by, ignore)
    labels = stats.group_labels(list(keys))
    params = stats.searched_params(frames.params, by, ignore)

    runs = frames.runs[["status", "seed", "epochs", "wall_time_s", "error"]].copy()
    runs.insert(0, "name", [_short_path(Path(p), sources) for p in frames.runs["path"]])
    runs.insert(1, "group", pd.Categorical(keys.map(labels), categories=list(labels.values())))
    runs.insert(3, "counted", runs["status"].isin(stats.COUNTED_STATUSES))
    runs["wall_time_s"] = pd.to_numeric(runs["wall_time_s"], errors="coerce")

    auto = target is None
    if auto:
        best = stats.run_metrics(frames.runs, frames.epochs, metric)[f"best_{metric}"]
        best_means = best[runs["counted"]].groupby(runs["group"], observed=True).mean()
        target = stats.auto_target(best_means, metric)
    per_run = stats.run_metrics(frames.runs, frames.epochs, metric, target)
    runs = pd.concat([runs.iloc[:, :6], per_run, runs.iloc[:, 6:]], axis=1)
    for param in params:
        runs[param] = _maybe_numeric(frames.params[param])

    columns = [f"final_{metric}", f"best_{metric}", "best_epoch", "wall_time_s"]
    columns += ["epochs_to_target"] if target is not None else []
    if "test_acc" in frames.runs and frames.runs["test_acc"].notna().any():  # eval.py's
        runs["test_acc"] = pd.to_numeric(frames.runs["test_acc"], errors="coerce")
        columns.append("test_acc")
    groups = stats.group_stats(runs, columns)
    groups.insert(0, "overrides", list(labels))
    if target is not None:
        reached = runs["counted"] & runs["epochs_to_target"].notna()
        groups["reached_target"] = reached.groupby(runs["group"], observed=False).sum()
    groups.index.name = "group"
    return Comparison(
        frames, runs, groups, metric, target, auto and target is not None, sources, by,
        tuple(ignore), params,
    )  # fmt: skip


def _mean_std(group: pd.Series, column: str) -> tuple[float, float, int] | None:
    n = int(group[f"{column}_n"])
    return (float(group[f"{column}_mean"]), float(group[f"{column}_std"]), n) if n else None


def _maybe_numeric(values: pd.Series) -> pd.Series:
    """Numbers where every given value is one (`optimizer.lr=1e-3`), else the text."""
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().sum() == values.notna().sum() else values


def _short_path(path: Path, sources: Sequence[str]) -> str:
    for s in sources:
        try:
            rel = path.resolve().relative_to(Path(s).resolve())
        except ValueError:
            continue
        return str(rel) if str(rel) != "." else path.name
    return str(path)
