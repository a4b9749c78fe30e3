"""Grouping runs and the group statistics: mean ± sample std (ddof=1), as in seed studies.

Completed and diverged runs are the outcomes of a recipe (a diverged seed counts against its
optimizer), so both enter the statistics; every other status is counted, not averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from lrlab.analysis.runs import override_dict, override_key

COUNTED_STATUSES = ("completed", "diverged")
# `running`: killed, or still going (the trainer rewrites summary.json every epoch);
# `preempted`: stopped by SIGTERM/SIGUSR1 with a checkpoint, to be resumed.
STATUS_ORDER = (
    "completed",
    "diverged",
    "running",
    "preempted",
    "interrupted",
    "failed",
    "missing",
)
# Override keys that cannot change a run's result (where and how a run is recorded, resumed,
# loaded or launched); a key also covers its sub-keys (`paths` covers `paths.log_dir`, `hydra`
# covers `hydra.launcher.n_jobs` and `hydra/launcher`). Runs differing only in these are seeds
# of one group.
DEFAULT_IGNORE = (
    "seed",
    "logger",
    "paths",
    "hydra",
    "trainer.progress_bar",
    "trainer.resume",
    "trainer.checkpoint",
    "trainer.checkpoint_every_n_steps",
    "trainer.num_workers",
    "trainer.num_threads",
    "trainer.device",
    "trainer.log_every_n_steps",
)
DEFAULT_LABEL = "(default)"  # the value of a `--by` key a run does not override


def is_loss(metric: str) -> bool:
    return "loss" in metric


def is_ignored(key: str, ignore: Iterable[str]) -> bool:
    return any(key == k or key.startswith((k + ".", k + "/")) for k in ignore)


def group_keys(
    overrides: pd.Series, by: Sequence[str] | None = None, ignore: Sequence[str] = DEFAULT_IGNORE
) -> pd.Series:
    """Each run's group key: its overrides minus `ignore`, sorted, or `key=value` of `by` only.

    The seed must stay ignored unless `by` is given: otherwise every run is its own group.
    """

    def key_of(run_overrides: tuple[str, ...]) -> tuple[str, ...]:
        if by:
            values = override_dict(run_overrides)
            return tuple(f"{k}={_text(values.get(k, DEFAULT_LABEL))}" for k in by)
        return tuple(sorted(o for o in run_overrides if not is_ignored(override_key(o), ignore)))

    return overrides.map(key_of)


def group_labels(keys: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Label each distinct key (in order) by the overrides that differ between groups."""
    distinct = list(dict.fromkeys(keys))
    shared = set(distinct[0]).intersection(*distinct[1:]) if len(distinct) > 1 else set()
    return {
        key: ",".join(o for o in key if o not in shared) or ",".join(key) or "(defaults)"
        for key in distinct
    }


def searched_params(
    params: pd.DataFrame, by: Sequence[str] | None, ignore: Sequence[str] = DEFAULT_IGNORE
) -> list[str]:
    """Override keys that vary across runs but do not define the groups (with `by` only):
    the parameters of a hyper-parameter search, e.g. `optimizer.lr` under `--by optimizer`."""
    if not by:
        return []
    return [
        k
        for k in params.columns
        if k not in by and not is_ignored(k, ignore) and params[k].map(_text).nunique() > 1
    ]


def run_metrics(
    runs: pd.DataFrame, epochs: pd.DataFrame, metric: str, target: float | None = None
) -> pd.DataFrame:
    """Per run: final and best value of `metric` (lowest for a loss; first epoch on ties), the
    best epoch and, with a target, the first epoch that reaches it. Without epoch rows for the
    metric, final and best come from summary.json (and the best epoch for `val_acc`)."""
    values = None
    if metric in epochs:
        values = epochs.loc[epochs[metric].notna(), ["run", "epoch", metric]]
    out = pd.DataFrame(index=runs.index)
    if values is not None and len(values):
        by_run = values.groupby("run")[metric]
        best_rows = by_run.idxmin() if is_loss(metric) else by_run.idxmax()  # first on ties
        out[f"final_{metric}"] = by_run.last()
        out[f"best_{metric}"] = values.loc[best_rows, metric].set_axis(best_rows.index)
        out["best_epoch"] = values.loc[best_rows, "epoch"].set_axis(best_rows.index)
    out = out.reindex(columns=[f"final_{metric}", f"best_{metric}", "best_epoch"]).astype(float)
    no_rows = out[f"final_{metric}"].isna() & runs["status"].ne("missing")
    for column in (f"final_{metric}", f"best_{metric}"):
        if column in runs:
            out.loc[no_rows, column] = pd.to_numeric(runs.loc[no_rows, column], errors="coerce")
    if metric == "val_acc" and "best_epoch" in runs:
        out.loc[no_rows, "best_epoch"] = pd.to_numeric(runs.loc[no_rows, "best_epoch"])
    if target is not None:
        hits = pd.Series(dtype=float)
        if values is not None:
            reached = values[metric] <= target if is_loss(metric) else values[metric] >= target
            hits = values[reached].groupby("run")["epoch"].min()  # rows are in epoch order
        out["epochs_to_target"] = hits.reindex(out.index)
    return out.astype(float)


def status_counts(statuses: pd.Series) -> dict[str, int]:
    """{status: runs} in STATUS_ORDER, unknown statuses after."""
    counts = statuses.value_counts()
    order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts.index) - set(STATUS_ORDER))
    return {s: int(counts[s]) for s in order}


def group_stats(runs: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """One row per group (in `runs.group`'s category order): `runs`, `counted`, `status`, and
    `<column>_mean`, `<column>_std` (ddof=1; NaN for one value), `<column>_n` over the
    counted runs' values of each of `columns`."""
    counted = runs[runs["counted"]]
    agg = counted.groupby("group", observed=False, sort=False)[list(columns)].agg(
        ["mean", "std", "count"]
    )
    agg.columns = [f"{c}_{'n' if a == 'count' else a}" for c, a in agg.columns]
    by_group = runs.groupby("group", observed=False, sort=False)
    out = pd.DataFrame(
        {
            "runs": by_group.size(),
            "counted": by_group["counted"].sum().astype(int),
            "status": by_group["status"].agg(lambda s: _status_text(status_counts(s))),
        }
    )
    return out.join(agg).reindex(runs["group"].cat.categories)


def mean_std(values: Iterable[float | int | None]) -> tuple[float, float, int] | None:
    """(mean, sample std with ddof=1 (nan for one value), n) of the finite values; None if none."""
    xs = pd.Series([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if xs.empty:
        return None
    return float(xs.mean()), float(xs.std(ddof=1)), int(xs.size)


def auto_target(best_means: pd.Series, metric: str) -> float | None:
    """90% of the best group's mean best value, rounded down to 0.01 (None for losses)."""
    best_means = best_means.dropna()
    if is_loss(metric) or best_means.empty:
        return None
    return math.floor(round(0.9 * best_means.max() * 100, 6)) / 100


def curve_stats(epochs: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean and sample std (nan where one run) of an epoch metric across the runs of
    `epochs` (missing values skipped)."""
    if metric not in epochs:
        return np.array([], dtype=int), np.array([]), np.array([])
    per_epoch = epochs.dropna(subset=[metric]).groupby("epoch")[metric].agg(["mean", "std"])
    return per_epoch.index.to_numpy(), per_epoch["mean"].to_numpy(), per_epoch["std"].to_numpy()


def _status_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _text(value: object) -> str:
    """An override's value as written (`~key` deletions have none)."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
