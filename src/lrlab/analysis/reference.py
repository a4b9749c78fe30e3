"""Reference results (a published table, an earlier study) beside the measured groups.

A reference is a CSV file. Lines starting with `#` say where the numbers come from (they are
copied into the report). Columns: `group`, the lrlab group a row is compared with, written as
overrides (`recipe=adam`; several joined by commas: `recipe=adam,data.image_size=64`), and
`final_<metric>`, `best_<metric>` (e.g. `final_val_acc`, `best_val_acc`); any other column is
for readers. A measured group matches a row when its overrides include every override of the
row's `group` (so `recipe=adam` matches `+recipe=adam` and `data.image_size=32,recipe=adam`);
it takes the first row it matches. An optional `also` column lists further groups a row
stands for, `;`-separated (`recipe=sgd_clr_seed`: the same optimizer under another recipe name).

Optional per-epoch values: columns `<metric>@<epoch>` (`val_acc@10`), and with an `epochs`
column the final value counts as the one at that epoch. They are drawn on the curves and set
beside the measured groups' means at the same epochs (`beside_epochs`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from lrlab.analysis.runs import override_dict
from lrlab.errors import ConfigError

if TYPE_CHECKING:
    from lrlab.analysis.comparison import Comparison


@dataclass(frozen=True)
class Reference:
    path: Path
    notes: list[str]  # the file's comment lines: its source
    rows: pd.DataFrame  # `group`, `final`, `best`, then the file's other columns
    digits: int = 4  # decimals to show: as many as the file's numbers have
    # per-epoch values: `group` (the row's), `epoch`, `value`; empty without such columns
    points: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["group", "epoch", "value"])
    )


def read_reference(path: str | Path, metric: str = "val_acc") -> Reference:
    """Read a reference CSV for `metric`; a one-line ConfigError names what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"reference file not found: {path}")
    notes = [
        line.lstrip("#").strip()
        for line in path.read_text().splitlines()
        if line.startswith("#") and line.lstrip("#").strip()
    ]
    try:
        table = pd.read_csv(path, comment="#", skipinitialspace=True, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ConfigError(f"reference file {path} is not a CSV table: {e}") from None
    columns = {"group": "group", f"final_{metric}": "final", f"best_{metric}": "best"}
    missing = [c for c in columns if c not in table]
    if missing:
        raise ConfigError(
            f"reference file {path} has no column {', '.join(missing)} "
            f"(it has: {', '.join(map(str, table.columns))})"
        )
    table = table.rename(columns=columns)
    at_epoch = {c: int(m[1]) for c in table if (m := re.fullmatch(rf"{metric}@(\d+)", c))}
    numeric = ["final", "best", *at_epoch]
    cells = [v for column in numeric for v in table[column] if isinstance(v, str)]
    digits = max(map(_decimals, cells), default=0)
    for column in [*numeric, *(["epochs"] if at_epoch and "epochs" in table else [])]:
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = table.loc[numbers.isna() & table[column].notna(), column]
        if len(bad):
            name = f"{column}_{metric}" if column in ("final", "best") else column
            raise ConfigError(f"reference file {path}: {name} {bad.iloc[0]!r} is no number")
        table[column] = numbers
    if table["group"].isna().any():
        raise ConfigError(f"reference file {path}: a row has no group")
    table["group"] = table["group"].astype(str).str.strip()
    order = ["group", "final", "best"]
    rows = table[order + [c for c in table if c not in order]]
    return Reference(path, notes, rows, digits, _points(table, at_epoch))


def _points(table: pd.DataFrame, at_epoch: dict[str, int]) -> pd.DataFrame:
    """The per-epoch values, long: (group, epoch, value); the final at `epochs` if given."""
    if not at_epoch:
        return pd.DataFrame(columns=["group", "epoch", "value"])
    parts = [
        pd.DataFrame({"group": table["group"], "epoch": epoch, "value": table[column]})
        for column, epoch in at_epoch.items()
    ]
    if "epochs" in table:
        parts.append(pd.DataFrame({"group": table["group"], "epoch": table["epochs"],
                                   "value": table["final"]}))  # fmt: skip
    points = pd.concat(parts, ignore_index=True).dropna(subset=["epoch", "value"])
    points["epoch"] = points["epoch"].astype(int)
    return points.drop_duplicates(["group", "epoch"]).sort_values(["group", "epoch"], kind="stable")


def _decimals(number: str) -> int:
    return len(number.split(".", 1)[1]) if "." in number and "e" not in number.lower() else 0


def split_overrides(spec: str) -> list[str]:
    """`a=1,b=[x,y]` -> [`a=1`, `b=[x,y]`]: commas inside brackets belong to a value."""
    return [part.strip() for part in re.split(r",(?![^\[]*\])", spec) if part.strip()]


def matches(group_overrides: tuple[str, ...], reference_group: str) -> bool:
    have = override_dict(group_overrides)
    want = override_dict(split_overrides(reference_group))
    return all(k in have and have[k] == v for k, v in want.items())


def matched_rows(c: Comparison, reference: Reference) -> dict[str, int | None]:
    """Each measured group's reference row (its index; None where none matches)."""
    refs = reference.rows
    names = {i: [r["group"], *_also(r.get("also"))] for i, r in refs.iterrows()}
    return {
        label: next(
            (i for i, alts in names.items() if any(matches(g["overrides"], a) for a in alts)),
            None,
        )
        for label, g in c.groups.iterrows()
    }


def _also(cell: object) -> list[str]:
    return [a.strip() for a in cell.split(";") if a.strip()] if isinstance(cell, str) else []


def reference_curves(c: Comparison, reference: Reference) -> dict[str, pd.DataFrame]:
    """{measured group: its reference row's per-epoch points (`epoch`, `value`)}, for the
    groups with a matching row that has any."""
    out = {}
    for label, hit in matched_rows(c, reference).items():
        if hit is None:
            continue
        points = reference.points[reference.points["group"] == reference.rows.at[hit, "group"]]
        if len(points):
            out[label] = points[["epoch", "value"]].reset_index(drop=True)
    return out


def beside_epochs(c: Comparison, reference: Reference) -> pd.DataFrame:
    """Per measured group with reference points, per reference epoch: `reference`, and the
    group's `measured` mean, `measured_std`, `measured_n` of the metric at that epoch over its
    counted runs (NaN, n 0 where no run reached it), `delta` = measured - reference."""
    epochs = c.epochs[c.epochs["counted"]]
    rows = []
    for label, points in reference_curves(c, reference).items():
        mine = epochs.loc[epochs["group"] == label].set_index("epoch")[c.metric]
        for epoch, value in zip(points["epoch"], points["value"], strict=True):
            at = mine[mine.index == epoch].dropna()
            rows.append({"group": label, "epoch": int(epoch), "reference": value,
                         "measured": at.mean(), "measured_std": at.std(ddof=1),
                         "measured_n": int(at.size)})  # fmt: skip
    table = pd.DataFrame(rows, columns=[*_EPOCH_COLUMNS[:-1]])
    table["delta"] = table["measured"] - table["reference"]
    return table


_EPOCH_COLUMNS = ["group", "epoch", "reference", "measured", "measured_std", "measured_n", "delta"]


def beside(c: Comparison, reference: Reference) -> pd.DataFrame:
    """One row per measured group (in order; `reference_*` NaN without a matching row), then
    one per reference row no group matches (`measured_*` NaN). `delta`: measured final mean
    - reference final."""
    m = c.metric
    refs = reference.rows
    used: set[int] = set()
    rows = []
    for label, hit in matched_rows(c, reference).items():
        g = c.groups.loc[label]
        if hit is not None:
            used.add(hit)
        row = {"group": label, **_reference_cells(refs, hit)}
        for stat in ("final", "best"):
            row[f"measured_{stat}"] = g[f"{stat}_{m}_mean"]
            row[f"measured_{stat}_std"] = g[f"{stat}_{m}_std"]
            row[f"measured_{stat}_n"] = g[f"{stat}_{m}_n"]
        rows.append(row)
    for i, ref in refs.iterrows():
        if i not in used:
            rows.append({"group": ref["group"], **_reference_cells(refs, i)})
    table = pd.DataFrame(rows).reindex(columns=_COLUMNS)
    table["delta"] = table["measured_final"] - table["reference_final"]
    return table


_COLUMNS = [
    "group",
    "reference_final",
    "reference_best",
    *(f"measured_{s}{x}" for s in ("final", "best") for x in ("", "_std", "_n")),
    "delta",
]


def _reference_cells(refs: pd.DataFrame, index: int | None) -> dict[str, float]:
    if index is None:
        return {}
    return {"reference_final": refs.at[index, "final"], "reference_best": refs.at[index, "best"]}
