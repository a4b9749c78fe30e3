"""Reference results (a published table, an earlier study) beside the measured groups.

A reference is a CSV file. Lines starting with `#` say where the numbers come from (they are
copied into the report). Columns: `group`, the lrlab group a row is compared with, written as
overrides (`recipe=adam`; several joined by commas: `recipe=adam,data.image_size=64`), and
`final_<metric>`, `best_<metric>` (e.g. `final_val_acc`, `best_val_acc`); any other column is
for readers. A measured group matches a row when its overrides include every override of the
row's `group` (so `recipe=adam` matches `+recipe=adam` and `data.image_size=32,recipe=adam`);
it takes the first row it matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    cells = [v for column in ("final", "best") for v in table[column] if isinstance(v, str)]
    digits = max(map(_decimals, cells), default=0)
    for column in ("final", "best"):
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = table.loc[numbers.isna() & table[column].notna(), column]
        if len(bad):
            raise ConfigError(
                f"reference file {path}: {column}_{metric} {bad.iloc[0]!r} is no number"
            )
        table[column] = numbers
    if table["group"].isna().any():
        raise ConfigError(f"reference file {path}: a row has no group")
    table["group"] = table["group"].astype(str).str.strip()
    order = ["group", "final", "best"]
    return Reference(path, notes, table[order + [c for c in table if c not in order]], digits)


def _decimals(number: str) -> int:
    return len(number.split(".", 1)[1]) if "." in number and "e" not in number.lower() else 0


def split_overrides(spec: str) -> list[str]:
    """`a=1,b=[x,y]` -> [`a=1`, `b=[x,y]`]: commas inside brackets belong to a value."""
    return [part.strip() for part in re.split(r",(?![^\[]*\])", spec) if part.strip()]


def matches(group_overrides: tuple[str, ...], reference_group: str) -> bool:
    have = override_dict(group_overrides)
    want = override_dict(split_overrides(reference_group))
    return all(k in have and have[k] == v for k, v in want.items())


def beside(c: Comparison, reference: Reference) -> pd.DataFrame:
    """One row per measured group (in order; `reference_*` NaN without a matching row), then
    one per reference row no group matches (`measured_*` NaN). `delta`: measured final mean
    - reference final."""
    m = c.metric
    refs = reference.rows
    used: set[int] = set()
    rows = []
    for label, g in c.groups.iterrows():
        hit = next((i for i, ref in refs.iterrows() if matches(g["overrides"], ref["group"])), None)
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
