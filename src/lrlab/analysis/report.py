"""A comparison as markdown tables, report.md and report.json (and the figures beside them)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from lrlab.analysis.stats import is_loss

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from lrlab.analysis.comparison import Comparison
    from lrlab.analysis.reference import Reference

MISSING = "–"


def group_table(c: Comparison) -> str:
    """One row per group: runs, status counts, mean ± std of the numbers."""
    m = c.metric
    header = ["group", "runs", "status", f"final {m}", f"best {m}", "best epoch"]
    test = "test_acc" in c.stat_columns  # eval.py's held-out accuracy, beside validation
    header += ["test acc (eval.py)"] * test
    if c.target is not None:
        header.append(f"epochs to {'≤' if is_loss(m) else '≥'} {c.target:g}")
    header.append("wall time (s)")
    rows = []
    for s in c.stats():
        n = s["status"].get("completed", 0) + s["status"].get("diverged", 0)
        row = [
            s["group"],
            str(s["runs"]),
            ", ".join(f"{count} {status}" for status, count in s["status"].items()),
            format_mean_std(s[f"final_{m}"], 4, n),
            format_mean_std(s[f"best_{m}"], 4, n),
            format_mean_std(s["best_epoch"], 1, n),
        ]
        if test:
            row.append(format_mean_std(s["test_acc"], 4))
        if c.target is not None:
            cell = format_mean_std(s["epochs_to_target"], 1)
            row.append(f"{cell} ({s['reached_target']}/{n} reached)" if n else cell)
        row.append(format_mean_std(s["wall_time_s"], 1, n))
        rows.append(row)
    return md_table(header, rows)


def runs_table(c: Comparison) -> str:
    """One row per run, grouped (diverged and failed runs listed with their error)."""
    m = c.metric
    header = ["run", "group", "seed", "status", f"final {m}", f"best {m}", "epochs"]
    header += ["params"] * bool(c.params) + ["error"]
    rows = []
    for run, r in _in_group_order(c.runs).iterrows():
        row = [r["name"], r["group"], "" if pd.isna(r["seed"]) else str(r["seed"]), r["status"]]
        row += [_fmt(r[f"final_{m}"], 4), _fmt(r[f"best_{m}"], 4), str(r["epochs"])]
        row += [_params_text(c, run)] * bool(c.params)
        error = r["error"] if isinstance(r["error"], str) else ""
        rows.append([*row, error.splitlines()[0][:80] if error else ""])
    return md_table(header, rows)


def best_runs_table(c: Comparison) -> str:
    """Per group, the counted run with the best value and its searched parameters."""
    m = c.metric
    rows = []
    for label in c.groups.index:
        runs = c.runs[(c.runs["group"] == label) & c.runs["counted"]].dropna(subset=[f"best_{m}"])
        if runs.empty:
            rows.append([label, MISSING, MISSING, ""])
            continue
        run = runs[f"best_{m}"].idxmin() if is_loss(m) else runs[f"best_{m}"].idxmax()
        rows.append([label, runs.at[run, "name"], _fmt(runs.at[run, f"best_{m}"], 4)])
        rows[-1].append(_params_text(c, run))
    return md_table(["group", "run", f"best {m}", "params"], rows)


def reference_table(table: pd.DataFrame, digits: int = 4) -> str:
    """The measured groups beside a reference (see `lrlab.analysis.reference.beside`);
    `digits`: the reference numbers' decimals."""
    header = ["group", "reference final", "reference best", "measured final", "measured best"]
    rows = []
    for _, r in table.iterrows():
        rows.append(
            [
                r["group"],
                _fmt(r["reference_final"], digits),
                _fmt(r["reference_best"], digits),
                format_mean_std(_ms(r, "measured_final"), 4),
                format_mean_std(_ms(r, "measured_best"), 4),
                MISSING if pd.isna(r["delta"]) else f"{r['delta']:+.4f}",
            ]
        )
    return md_table([*header, "delta"], rows)


def epochs_table(table: pd.DataFrame, digits: int = 4) -> str:
    """Measured and reference values at the reference's epochs (`reference.beside_epochs`)."""
    rows = [
        [r["group"], str(r["epoch"]), _fmt(r["reference"], digits),
         format_mean_std(_ms(r, "measured"), 4), _signed(r["delta"])]
        for _, r in table.iterrows()
    ]  # fmt: skip
    return md_table(["group", "epoch", "reference", "measured", "delta"], rows)


def pairwise_table(table: pd.DataFrame, confidence: float, method: str) -> str:
    """Each pair's difference of means with its interval (`lrlab.analysis.pairwise`)."""
    rows = [
        [r["group_a"], r["group_b"], f"{r['n_a']} / {r['n_b']}", _signed(r["difference"]),
         MISSING if pd.isna(r["ci_low"]) else f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]",
         _fmt(r["p_value"], 3), "yes" if r["resolved"] else "no"]
        for _, r in table.iterrows()
    ]  # fmt: skip
    ci = f"{confidence:.0%} CI ({method})"
    return md_table(["group a", "group b", "n a / b", "a - b", ci, "p (Welch)", "resolved"], rows)


def markdown(
    c: Comparison,
    figures: Sequence[str] = (),
    reference: Reference | None = None,
    pairwise: str | None = "welch",
    confidence: float = 0.95,
) -> str:
    grouping = (
        f"by {', '.join(c.by)}" if c.by else f"by every override except {', '.join(c.ignore)}"
    )
    parts = ["# Run comparison", "", f"Sources: {', '.join(f'`{s}`' for s in c.sources)}", ""]
    parts.append(
        f"{len(c.runs)} runs in {len(c.groups)} groups (grouped {grouping}). Cells are "
        f"mean ± sample std (ddof=1) over the completed and diverged runs; metric `{c.metric}`."
    )
    if c.params:
        parts.append(
            f"Searched parameters (they vary within groups): {', '.join(f'`{p}`' for p in c.params)}."
        )
    if c.target is not None:
        how = " (auto: 90% of the best group's mean best value)" if c.target_auto else ""
        parts.append(f"Target: `{c.metric}` {c.target:g}{how}.")
    parts += ["", group_table(c), ""]
    if pairwise and len(c.groups) > 1:
        parts += [f"## Pairwise differences of the final `{c.metric}`", "", PAIRWISE_NOTE, ""]
        parts += [pairwise_table(c.pairwise(None, confidence, pairwise), confidence, pairwise), ""]
    if reference is not None:
        from lrlab.analysis.reference import beside, beside_epochs

        parts += ["## Against the reference", "", f"Reference: `{reference.path}`."]
        parts += [*(f"> {line}" for line in reference.notes), ""]
        parts += [reference_table(beside(c, reference), reference.digits), ""]
        parts += [REFERENCE_NOTE, ""]
        at_epochs = beside_epochs(c, reference)
        if len(at_epochs):
            parts += ["At the reference's epochs (mean over the counted runs that reached them):"]
            parts += ["", epochs_table(at_epochs, reference.digits), ""]
    parts += [f"![{Path(name).stem}]({name})\n" for name in figures]
    if c.params:
        parts += ["## Best run per group", "", best_runs_table(c), ""]
    parts += ["## Runs", "", runs_table(c), ""]
    return "\n".join(parts)


REFERENCE_NOTE = (
    f"Delta: measured final mean - reference final. {MISSING} in the reference columns: no "
    f"reference row for that group; {MISSING} in the measured columns: no completed or "
    "diverged run in that group, or (rows after the measured groups) no group was measured for "
    "that reference row."
)


PAIRWISE_NOTE = (
    "Per pair of groups, the difference of their means over the counted runs and its confidence "
    "interval; *resolved*: the interval excludes 0. Fewer than 2 runs in a group: no interval."
)


def write_report(
    c: Comparison,
    out_dir: str | Path,
    figures: bool = True,
    plot_vs: Sequence[str] = (),
    plot_value: str = "best",
    reference: Reference | None = None,
    pairwise: str | None = "welch",
    confidence: float = 0.95,
) -> dict[str, Path]:
    """report.md and report.json; curves.png and lr.png unless `figures` is off; one
    `<value>_<metric>_vs_<param>.png` per `plot_vs` key; pairwise intervals by the method
    `pairwise` (welch | bootstrap; None: none)."""
    out = Path(out_dir)
    # every figure is made before anything is written: a bad --plot-vs key writes nothing
    made: dict[str, tuple[Figure, str]] = {}
    if figures:
        from lrlab.analysis.reference import reference_curves

        points = reference_curves(c, reference) if reference is not None else None
        made["curves"] = (c.curves_figure(reference_points=points), "curves.png")
        lr = c.lr_figure()
        if lr is not None:
            made["lr"] = (lr, "lr.png")
    for param in plot_vs:
        made[f"vs_{param}"] = (c.vs_figure(param, plot_value), _vs_name(c, param, plot_value))
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for key, (fig, name) in made.items():
        fig.savefig(out / name, dpi=110)
        paths[key] = out / name
    paths["report"] = out / "report.md"
    names = [name for _, name in made.values()]
    paths["report"].write_text(markdown(c, names, reference, pairwise, confidence))
    paths["json"] = out / "report.json"
    payload: dict[str, Any] = {"metric": c.metric, "target": c.target, "groups": c.stats()}
    if pairwise and len(c.groups) > 1:
        table = c.pairwise(None, confidence, pairwise)
        payload["pairwise"] = {"column": f"final_{c.metric}", "method": pairwise,
                               "confidence": confidence, "pairs": table.to_dict("records")}  # fmt: skip
    if c.params:
        payload["searched_params"] = c.params
    if reference is not None:
        from lrlab.analysis.reference import beside, beside_epochs

        payload["reference"] = {
            "path": str(reference.path),
            "notes": reference.notes,
            "rows": beside(c, reference).to_dict("records"),
            "at_epochs": beside_epochs(c, reference).to_dict("records"),
        }
    paths["json"].write_text(json.dumps(jsonable(payload), indent=2) + "\n")
    return paths


def format_mean_std(ms: tuple[float, float, int] | None, digits: int, n: int | None = None) -> str:
    """`0.8500 ± 0.0100`; `(n=2)` appended when fewer values than runs went in."""
    if ms is None:
        return MISSING
    mean, std, k = ms
    text = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")
    return text + (f" (n={k})" if n is not None and k != n else "")


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return "\n".join(_md_row(r) for r in [header, ["---"] * len(header), *rows])


def jsonable(obj: Any) -> Any:
    """Strict JSON: (mean, std, n) tuples become dicts, NaN becomes null."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple) and len(obj) == 3:
        return {"mean": _finite(obj[0]), "std": _finite(obj[1]), "n": obj[2]}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return _finite(obj)
    return obj


def _in_group_order(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.assign(_order=runs["group"].cat.codes).sort_values("_order", kind="stable")


def _params_text(c: Comparison, run: int) -> str:
    values = c.frames.params.loc[run, c.params]
    return ", ".join(f"{k}={v}" for k, v in values.items() if isinstance(v, str))


def _vs_name(c: Comparison, param: str, value: str) -> str:
    return f"{value}_{c.metric}_vs_{re.sub(r'[^A-Za-z0-9._-]', '_', param)}.png"


def _ms(row: pd.Series, column: str) -> tuple[float, float, int] | None:
    n = row[f"{column}_n"]
    return None if pd.isna(n) or n == 0 else (row[column], row[f"{column}_std"], int(n))


def _signed(value: Any) -> str:
    return MISSING if value is None or pd.isna(value) else f"{value:+.4f}"


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _fmt(value: Any, digits: int) -> str:
    return MISSING if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
