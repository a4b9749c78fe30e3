"""Figures from the comparison's frames, as bare matplotlib Figures (no pyplot state).

Frames carry a categorical `group` column whose categories give the groups' order and colours;
pass the counted runs' rows (the `Comparison` methods do).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lrlab.analysis.stats import curve_stats

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CURVE_METRICS = ("train_acc", "val_acc", "train_loss", "val_loss")
DECADES = 20  # a log axis when the largest positive value is more than this times the smallest


def curves_figure(
    epochs: pd.DataFrame,
    metrics: Sequence[str] = CURVE_METRICS,
    reference: dict[str, pd.DataFrame] | None = None,
    reference_metric: str = "val_acc",
) -> Figure:
    """One panel per metric: per group the mean over its runs per epoch with a ±std band;
    `reference` ({group: `epoch`, `value`}) drawn on the `reference_metric` panel."""
    groups = list(epochs["group"].cat.categories)
    fig, axes = _figure(math.ceil(len(metrics) / 2), 2)
    colors = dict(zip(groups, _colors(len(groups)), strict=True))
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for group, rows in epochs.groupby("group", observed=True, sort=False):
            x, mean, std = curve_stats(rows, metric)
            if x.size == 0:
                continue
            marker = "." if x.size < 20 else None
            ax.plot(x, mean, color=colors[group], label=group, marker=marker)
            band = np.isfinite(std)
            if band.any():
                ax.fill_between(
                    x[band],
                    (mean - std)[band],
                    (mean + std)[band],
                    color=colors[group],
                    alpha=0.2,
                    lw=0,
                )
        if reference and metric == reference_metric:  # after the curves: they set the x-range
            _reference_points(ax, reference, colors, epochs["epoch"].max())
        note = "; ◇ ▷ reference" if reference and metric == reference_metric else ""
        ax.set_title(metric.replace("_", " ") + f" (mean ± std over seeds{note})")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)  # linear y: a log axis cannot show a band whose mean - std is < 0
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    _legend(fig, _first_with_legend(list(axes.flat)))
    return fig


def _reference_points(
    ax: Axes, reference: dict[str, pd.DataFrame], colors: dict, last_epoch: float
) -> None:
    """Reference values as hollow diamonds at their epochs; the last one past the measured
    runs' last epoch (the seed's epoch 150 beside 15-epoch runs) as a triangle at the right
    edge with its epoch beside it, so that the measured curves keep the x-axis."""
    for group, points in reference.items():
        inside = points[points["epoch"] <= last_epoch]
        beyond = points[points["epoch"] > last_epoch].tail(1)
        style = {"color": colors[group], "facecolors": "none", "zorder": 3}
        ax.scatter(inside["epoch"], inside["value"], marker="D", **style)
        edge = last_epoch + 0.5
        ax.scatter([edge] * len(beyond), beyond["value"], marker=">", **style)
        for epoch, value in zip(beyond["epoch"], beyond["value"], strict=True):
            ax.annotate(f"@{epoch}", (edge, value), xytext=(5, -3), textcoords="offset points",
                        fontsize="x-small", color=colors[group])  # fmt: skip
    ax.set_xlim(right=last_epoch + 0.5 + max(1.0, 0.1 * last_epoch))


def lr_figure(steps: pd.DataFrame, epochs: pd.DataFrame) -> Figure | None:
    """Learning rate (param group 0) and momentum per logged step, one colour per group (from
    the epoch rows for a run without step rows); None when no run logged a learning rate."""
    groups = list(epochs["group"].cat.categories)
    traces = {key: _traces(steps, epochs, key) for key in ("lr", "momentum")}
    panels = [key for key, runs in traces.items() if runs]
    if "lr" not in panels:
        return None
    fig, axes = _figure(1, len(panels))
    colors = dict(zip(groups, _colors(len(groups)), strict=True))
    for ax, key in zip(axes.flat, panels, strict=True):
        labelled: set[str] = set()
        for group, x, y in traces[key]:
            label = None if group in labelled else group
            labelled.add(group)
            ax.plot(x, y, color=colors[group], label=label, lw=1.2, alpha=0.8)
        ax.set_title("learning rate (param group 0)" if key == "lr" else "momentum / beta1")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if key == "lr" and spans_decades(np.concatenate([y for _, _, y in traces["lr"]])):
            ax.set_yscale("log")
    _legend(fig, axes.flat[0])
    return fig


def vs_figure(runs: pd.DataFrame, param: str, value: str) -> Figure:
    """`value` (e.g. `best_val_acc`) of each run against the numeric column `param`, one
    colour per group; diverged runs as crosses. Log x when the values span decades."""
    groups = list(runs["group"].cat.categories)
    colors = dict(zip(groups, _colors(len(groups)), strict=True))
    points = runs.dropna(subset=[param, value])
    fig, axes = _figure(1, 1, width=7.5)
    ax = axes[0, 0]
    for group, rows in points.groupby("group", observed=True, sort=False):
        for diverged, marker in ((False, "o"), (True, "x")):
            part = rows[(rows["status"] == "diverged") == diverged]
            if len(part):
                label = group if not diverged else f"{group} (diverged)"
                ax.scatter(
                    part[param], part[value], color=colors[group], marker=marker, label=label
                )
    if spans_decades(points[param].to_numpy()) and (points[param] > 0).all():
        ax.set_xscale("log")
    left_out = len(runs) - len(points)
    note = f"; {left_out} run(s) without a value left out" if left_out else ""
    ax.set_title(f"{value.replace('_', ' ')} per run ({len(points)} runs{note})")
    ax.set_xlabel(param)
    ax.set_ylabel(value.replace("_", " "))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def spans_decades(values: np.ndarray) -> bool:
    positive = values[values > 0]
    return positive.size > 0 and positive.max() / positive.min() > DECADES


def _traces(
    steps: pd.DataFrame, epochs: pd.DataFrame, key: str
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(group, epoch, value) per run in group order: its step rows with a value, else its
    epoch rows."""
    runs = pd.concat([epochs[["run", "group"]], steps[["run", "group"]]]).drop_duplicates("run")
    runs = runs.assign(order=runs["group"].cat.codes).sort_values(["order", "run"])
    out = []
    for run, group in zip(runs["run"], runs["group"], strict=True):
        rows = _rows_with(steps[steps["run"] == run], key)
        if rows.empty:
            rows = _rows_with(epochs[epochs["run"] == run], key)
        if len(rows):
            out.append((group, rows["epoch"].to_numpy(float), rows[key].to_numpy(float)))
    return out


def _rows_with(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    return frame.dropna(subset=[key]) if key in frame else frame.iloc[:0]


def _figure(nrows: int, ncols: int, width: float = 6.5) -> tuple[Figure, Any]:
    # A bare Figure, not pyplot: no global backend switch (notebooks keep theirs), no leaks.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, 4 * nrows))
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _first_with_legend(axes: list[Axes]) -> Axes:
    return next((ax for ax in axes if ax.get_legend_handles_labels()[0]), axes[0])


def _legend(fig: Figure, ax: Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), frameon=False)
        fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(labels) - 1) // 4), 1, 1))
    else:
        fig.tight_layout()
