"""Compare runs from their records: group by overrides minus the seed, tabulate, plot.

Used by `scripts/compare.py` and `notebooks/compare_optimizers.ipynb`. A run is a directory
with the records the trainer writes (`summary.json`, `metrics.jsonl`, `.hydra/overrides.yaml`).
Statistics are mean ± sample std (ddof=1) across the runs of a group, as in seed studies.
Completed and diverged runs are the outcomes of a recipe, so both enter the statistics; failed,
interrupted, `running` (killed, or still going: the trainer rewrites summary.json every epoch)
and `missing` runs (no summary.json) are counted and listed but not averaged.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Statuses whose numbers describe the recipe (a diverged seed counts against its optimizer).
COUNTED_STATUSES = ("completed", "diverged")
STATUS_ORDER = ("completed", "diverged", "running", "interrupted", "failed", "missing")
# Override keys that do not change a run's result (a key also covers its sub-keys: `paths`
# covers `paths.log_dir`); runs differing only in these are seeds of one group.
# Overrides that cannot change a result (where and how a run is recorded, resumed or loaded).
DEFAULT_IGNORE = (
    "seed",
    "logger",
    "paths",
    "hydra",
    "trainer.progress_bar",
    "trainer.resume",
    "trainer.checkpoint",
    "trainer.num_workers",
    "trainer.device",
    "trainer.log_every_n_steps",
)
CURVE_METRICS = ("train_acc", "val_acc", "train_loss", "val_loss")


@dataclass
class Run:
    """One run directory's records."""

    path: Path
    overrides: list[str]
    summary: dict[str, Any] | None
    epoch_rows: list[dict[str, Any]]
    step_rows: list[dict[str, Any]]

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "missing")) if self.summary else "missing"

    @property
    def counted(self) -> bool:
        return self.status in COUNTED_STATUSES

    @property
    def seed(self) -> int | None:
        if self.summary and self.summary.get("seed") is not None:
            return int(self.summary["seed"])
        value = override_dict(self.overrides).get("seed")
        return int(value) if value is not None and value.lstrip("-").isdigit() else None

    def epoch_values(self, metric: str) -> dict[int, float]:
        """{epoch: value} of an epoch-row metric (missing and non-finite values skipped)."""
        out = {}
        for row in self.epoch_rows:
            value = row.get(metric)
            if isinstance(value, int | float) and math.isfinite(value):
                out[int(row["epoch"])] = float(value)
        return out

    def final(self, metric: str) -> float | None:
        values = self.epoch_values(metric)
        if values:
            return values[max(values)]
        return _finite(self.summary.get(f"final_{metric}")) if self.summary else None

    def best(self, metric: str) -> tuple[float | None, int | None]:
        """Best value of `metric` (lowest for losses) and its epoch, first one on ties."""
        values = self.epoch_values(metric)
        if not values:
            if not self.summary:
                return None, None
            epoch = self.summary.get("best_epoch") if metric == "val_acc" else None
            return _finite(self.summary.get(f"best_{metric}")), epoch
        pick = min if is_loss(metric) else max
        epoch = pick(sorted(values), key=lambda e: values[e])
        return values[epoch], epoch

    def epochs_to(self, metric: str, target: float) -> int | None:
        """First epoch at which `metric` reaches `target` (<= for losses), None if never."""
        for epoch, value in sorted(self.epoch_values(metric).items()):
            if (value <= target) if is_loss(metric) else (value >= target):
                return epoch
        return None

    @property
    def wall_time_s(self) -> float | None:
        return _finite(self.summary.get("wall_time_s")) if self.summary else None


@dataclass
class Group:
    """Runs that share every override but the ignored ones (the seed)."""

    key: tuple[str, ...]
    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def counted_runs(self) -> list[Run]:
        return [r for r in self.runs if r.counted]

    def status_counts(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.runs)
        order = [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))
        return {s: counts[s] for s in order}

    def stats(self, metric: str = "val_acc", target: float | None = None) -> dict[str, Any]:
        """Mean/std/n of the group's numbers over its counted runs."""
        runs = self.counted_runs
        best = [r.best(metric) for r in runs]
        out = {
            "group": self.label,
            "overrides": list(self.key),
            "runs": len(self.runs),
            "status": self.status_counts(),
            f"final_{metric}": mean_std([r.final(metric) for r in runs]),
            f"best_{metric}": mean_std([b[0] for b in best]),
            "best_epoch": mean_std([b[1] for b in best]),
            "wall_time_s": mean_std([r.wall_time_s for r in runs]),
        }
        if target is not None:
            reached = [r.epochs_to(metric, target) for r in runs]
            out["epochs_to_target"] = mean_std(reached)
            out["reached_target"] = sum(e is not None for e in reached)
        return out


@dataclass
class Comparison:
    """Runs grouped for a report; `write()` produces report.md, report.json and the figures."""

    runs: list[Run]
    groups: list[Group]
    metric: str = "val_acc"
    target: float | None = None
    target_auto: bool = False
    sources: list[str] = field(default_factory=list)
    by: Sequence[str] | None = None
    ignore: Sequence[str] = DEFAULT_IGNORE

    def stats(self) -> list[dict[str, Any]]:
        return [g.stats(self.metric, self.target) for g in self.groups]

    def table(self) -> str:
        """Markdown table, one row per group."""
        m = self.metric
        header = ["group", "runs", "status", f"final {m}", f"best {m}", "best epoch"]
        if self.target is not None:
            header.append(f"epochs to {'≤' if is_loss(m) else '≥'} {self.target:g}")
        header.append("wall time (s)")
        lines = [_md_row(header), _md_row(["---"] * len(header))]
        for s in self.stats():
            n = s["status"].get("completed", 0) + s["status"].get("diverged", 0)
            row = [
                s["group"],
                str(s["runs"]),
                ", ".join(f"{c} {st}" for st, c in s["status"].items()),
                format_mean_std(s[f"final_{m}"], 4, n),
                format_mean_std(s[f"best_{m}"], 4, n),
                format_mean_std(s["best_epoch"], 1, n),
            ]
            if self.target is not None:
                cell = format_mean_std(s["epochs_to_target"], 1)
                row.append(f"{cell} ({s['reached_target']}/{n} reached)" if n else cell)
            row.append(format_mean_std(s["wall_time_s"], 1, n))
            lines.append(_md_row(row))
        return "\n".join(lines)

    def runs_table(self) -> str:
        """Markdown table, one row per run (diverged and failed runs listed with their error)."""
        m = self.metric
        header = ["run", "group", "seed", "status", f"final {m}", f"best {m}", "epochs", "error"]
        lines = [_md_row(header), _md_row(["---"] * len(header))]
        for g in self.groups:
            for r in g.runs:
                best, _ = r.best(m)
                epochs = r.summary.get("epochs_completed") if r.summary else None
                if epochs is None:
                    epochs = len(r.epoch_rows)
                error = (r.summary or {}).get("error") or (
                    "no summary.json" if not r.summary else ""
                )
                lines.append(
                    _md_row(
                        [
                            _short_path(r.path, self.sources),
                            g.label,
                            "" if r.seed is None else str(r.seed),
                            r.status,
                            _fmt(r.final(m), 4),
                            _fmt(best, 4),
                            str(epochs),
                            str(error).splitlines()[0][:80] if error else "",
                        ]
                    )
                )
        return "\n".join(lines)

    def markdown(self, figures: Sequence[str] = ()) -> str:
        parts = ["# Run comparison", ""]
        parts += [f"Sources: {', '.join(f'`{s}`' for s in self.sources)}", ""]
        grouping = (
            f"by {', '.join(self.by)}"
            if self.by
            else f"by every override except {', '.join(self.ignore)}"
        )
        parts.append(
            f"{len(self.runs)} runs in {len(self.groups)} groups (grouped {grouping}). Cells are "
            f"mean ± sample std (ddof=1) over the completed and diverged runs; metric "
            f"`{self.metric}`."
        )
        if self.target is not None:
            how = " (auto: 90% of the best group's mean best value)" if self.target_auto else ""
            parts.append(f"Target: `{self.metric}` {self.target:g}{how}.")
        parts += ["", self.table(), ""]
        for name in figures:
            parts += [f"![{Path(name).stem}]({name})", ""]
        parts += ["## Runs", "", self.runs_table(), ""]
        return "\n".join(parts)

    def write(self, out_dir: str | Path, figures: bool = True) -> dict[str, Path]:
        """Write report.md, report.json, curves.png and lr.png into `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        names: list[str] = []
        if figures:
            paths["curves"] = plot_curves(self.groups, out / "curves.png")
            names.append("curves.png")
            lr_path = plot_lr(self.groups, out / "lr.png")
            if lr_path is not None:
                paths["lr"] = lr_path
                names.append("lr.png")
        paths["report"] = out / "report.md"
        paths["report"].write_text(self.markdown(names))
        paths["json"] = out / "report.json"
        payload = {"metric": self.metric, "target": self.target, "groups": self.stats()}
        paths["json"].write_text(json.dumps(_jsonable(payload), indent=2) + "\n")
        return paths


# ---------------------------------------------------------------------------- loading


def is_run_dir(path: Path) -> bool:
    return (
        (path / "summary.json").is_file()
        or (path / "metrics.jsonl").is_file()
        or (path / ".hydra" / "overrides.yaml").is_file()
    )


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run dirs given directly or found below the given dirs (e.g. a multirun dir), in order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"not a directory: {p}")
        if is_run_dir(p):
            candidates = [p]
        else:
            marks = ("summary.json", "metrics.jsonl", ".hydra/overrides.yaml")
            dirs = {
                f.parent.parent if f.parent.name == ".hydra" else f.parent
                for m in marks
                for f in p.rglob(m)
            }
            # a run's own subfolders (e.g. a nested tool's output) are part of that run
            candidates = sorted(
                (d for d in dirs if not any(a in dirs for a in d.parents)), key=_natural_key
            )
        found += [c for c in candidates if c not in found]
    return found


def load_run(run_dir: str | Path) -> Run:
    path = Path(run_dir)
    summary = _read_json(path / "summary.json")
    overrides_file = path / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        overrides = [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])]
    else:
        overrides = [str(o) for o in (summary or {}).get("overrides", [])]
    epochs: dict[int, dict[str, Any]] = {}
    steps: list[dict[str, Any]] = []
    metrics = path / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                row = json.loads(line)  # json reads the NaN/Infinity a diverged run writes
            except json.JSONDecodeError:
                continue  # a line cut short by a hard crash
            if row.get("type") == "epoch":
                epochs[int(row["epoch"])] = row  # a resumed run may repeat an epoch: keep the last
            elif row.get("type") == "step":
                steps.append(row)
    return Run(path, overrides, summary, [epochs[e] for e in sorted(epochs)], steps)


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    return [load_run(d) for d in find_run_dirs(paths)]


def override_key(override: str) -> str:
    """`+a.b=1` -> `a.b`; `~a` -> `a`."""
    return override.split("=", 1)[0].lstrip("+~")


def override_dict(overrides: Iterable[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for o in overrides:
        out[override_key(o)] = o.split("=", 1)[1] if "=" in o else None
    return out


def is_ignored(key: str, ignore: Sequence[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in ignore)


def group_runs(
    runs: Sequence[Run], by: Sequence[str] | None = None, ignore: Sequence[str] = DEFAULT_IGNORE
) -> list[Group]:
    """Group runs by their overrides minus `ignore` (or by the keys `by` only), in run order.

    The seed must stay ignored unless `by` is given: otherwise every run is its own group.
    """

    def key_of(run: Run) -> tuple[str, ...]:
        d = override_dict(run.overrides)
        if by:
            return tuple(f"{k}={d.get(k, '(default)')}" for k in by)
        return tuple(sorted(o for o in run.overrides if not is_ignored(override_key(o), ignore)))

    groups: dict[tuple[str, ...], Group] = {}
    for run in runs:
        key = key_of(run)
        groups.setdefault(key, Group(key, "", [])).runs.append(run)
    # Label with the overrides that differ between groups (e.g. drop `experiment=...`).
    keys = list(groups)
    shared = set(keys[0]).intersection(*keys[1:]) if len(keys) > 1 else set()
    for key, group in groups.items():
        group.label = ",".join(o for o in key if o not in shared) or ",".join(key) or "(defaults)"
    return list(groups.values())


def compare(
    paths: Iterable[str | Path],
    metric: str = "val_acc",
    by: Sequence[str] | None = None,
    ignore: Sequence[str] = DEFAULT_IGNORE,
    target: float | None = None,
) -> Comparison:
    """Load the runs under `paths` and group them; `target=None` picks one automatically."""
    paths = [str(p) for p in paths]
    runs = load_runs(paths)
    if not runs:
        raise FileNotFoundError(f"no run records (summary.json/metrics.jsonl) under {paths}")
    groups = group_runs(runs, by=by, ignore=ignore)
    auto = target is None
    if auto:
        target = auto_target(groups, metric)
    return Comparison(
        runs, groups, metric, target, auto and target is not None, paths, by, tuple(ignore)
    )


def auto_target(groups: Sequence[Group], metric: str) -> float | None:
    """90% of the best group's mean best value, rounded to 2 decimals (None for losses)."""
    if is_loss(metric):
        return None
    means = [m[0] for g in groups if (m := mean_std([r.best(metric)[0] for r in g.counted_runs]))]
    return math.floor(round(0.9 * max(means) * 100, 6)) / 100 if means else None


# ---------------------------------------------------------------------------- statistics


def mean_std(values: Iterable[float | int | None]) -> tuple[float, float, int] | None:
    """(mean, sample std with ddof=1 (nan for one value), n) of the non-None values."""
    xs = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if xs.size == 0:
        return None
    std = float(xs.std(ddof=1)) if xs.size > 1 else math.nan
    return float(xs.mean()), std, int(xs.size)


def format_mean_std(ms: tuple[float, float, int] | None, digits: int, n: int | None = None) -> str:
    """`0.8500 ± 0.0100`; `(n=2)` appended when fewer values than runs went in."""
    if ms is None:
        return "–"
    mean, std, k = ms
    text = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")
    return text + (f" (n={k})" if n is not None and k != n else "")


def is_loss(metric: str) -> bool:
    return "loss" in metric


def curve_stats(runs: Sequence[Run], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean and sample std (nan where one run) of an epoch metric across runs."""
    per_run = [r.epoch_values(metric) for r in runs]
    epochs = sorted({e for values in per_run for e in values})
    mean, std = [], []
    for e in epochs:
        ms = mean_std([values.get(e) for values in per_run])
        mean.append(ms[0] if ms else math.nan)
        std.append(ms[1] if ms else math.nan)
    return np.array(epochs), np.array(mean), np.array(std)


# ---------------------------------------------------------------------------- figures


def curves_figure(groups: Sequence[Group], metrics: Sequence[str] = CURVE_METRICS) -> Figure:
    """One panel per metric: per-group mean over seeds per epoch with a ±std band."""
    ncols = 2
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = _figure(nrows, ncols)
    colors = _colors(len(groups))
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for group, color in zip(groups, colors, strict=True):
            epochs, mean, std = curve_stats(group.counted_runs, metric)
            if epochs.size == 0:
                continue
            marker = "." if epochs.size < 20 else None
            ax.plot(epochs, mean, color=color, label=group.label, marker=marker)
            band = np.isfinite(std)
            if band.any():
                ax.fill_between(
                    epochs[band],
                    (mean - std)[band],
                    (mean + std)[band],
                    color=color,
                    alpha=0.2,
                    lw=0,
                )
        ax.set_title(metric.replace("_", " ") + " (mean ± std over seeds)")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)  # linear y: a log axis cannot show a band whose mean - std is < 0
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    _legend(fig, axes.flat[0], len(groups))
    return fig


def lr_figure(groups: Sequence[Group]) -> Figure | None:
    """Learning rate (param group 0) and momentum per logged step, one color per group;
    None when no run has logged a learning rate."""
    traces = {
        key: [(g, _trace(r, key)) for g in groups for r in g.counted_runs]
        for key in ("lr", "momentum")
    }
    panels = [k for k, v in traces.items() if any(t[0].size for _, t in v)]
    if "lr" not in panels:
        return None
    fig, axes = _figure(1, len(panels))
    colors = dict(zip((g.label for g in groups), _colors(len(groups)), strict=True))
    for ax, key in zip(axes.flat, panels, strict=True):
        labelled: set[str] = set()
        for group, (x, y) in traces[key]:
            if x.size:
                label = None if group.label in labelled else group.label
                labelled.add(group.label)
                ax.plot(x, y, color=colors[group.label], label=label, lw=1.2, alpha=0.8)
        ax.set_title("learning rate (param group 0)" if key == "lr" else "momentum / beta1")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if key == "lr" and _spans_decades(traces["lr"]):
            ax.set_yscale("log")
    _legend(fig, axes.flat[0], len(groups))
    return fig


def plot_curves(
    groups: Sequence[Group], path: str | Path, metrics: Sequence[str] = CURVE_METRICS
) -> Path:
    return _save(curves_figure(groups, metrics), path)


def plot_lr(groups: Sequence[Group], path: str | Path) -> Path | None:
    fig = lr_figure(groups)
    return None if fig is None else _save(fig, path)


def _trace(run: Run, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epoch, value) from step rows, else from epoch rows."""
    rows = [r for r in run.step_rows if isinstance(r.get(key), int | float)] or [
        r for r in run.epoch_rows if isinstance(r.get(key), int | float)
    ]
    x = np.array([float(r["epoch"]) for r in rows])
    return x, np.array([float(r[key]) for r in rows])


def _spans_decades(traces: list[tuple[Group, tuple[np.ndarray, np.ndarray]]]) -> bool:
    values = np.concatenate([y for _, (_, y) in traces if y.size])
    values = values[values > 0]
    return values.size > 0 and values.max() / values.min() > 20


def _figure(nrows: int, ncols: int) -> tuple[Figure, np.ndarray]:
    # A bare Figure, not pyplot: no global backend switch (notebooks keep theirs), no leaks.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5 * ncols, 4 * nrows))
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _legend(fig: Figure, ax: Any, n: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(n, 4), frameon=False)
        fig.tight_layout(rect=(0, 0.06 + 0.04 * ((n - 1) // 4), 1, 1))
    else:
        fig.tight_layout()


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# ---------------------------------------------------------------------------- helpers


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _short_path(path: Path, sources: Sequence[str]) -> str:
    for s in sources:
        try:
            rel = path.resolve().relative_to(Path(s).resolve())
        except ValueError:
            continue
        return str(rel) if str(rel) != "." else path.name
    return str(path)


def _jsonable(obj: Any) -> Any:
    """Stats as strict JSON: (mean, std, n) tuples become dicts, nan becomes null."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and len(obj) == 3:
        return {"mean": _finite(obj[0]), "std": _finite(obj[1]), "n": obj[2]}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return _finite(obj)
    return obj
