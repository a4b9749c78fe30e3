"""Run directories into tidy DataFrames: one row per run, per epoch and per logged step.

A run is a directory with the records the trainer writes (`summary.json`, `metrics.jsonl`,
`.hydra/overrides.yaml`); any one of them is enough. Non-finite numbers (a diverged loss) are
NaN in the frames.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

RECORD_FILES = ("summary.json", "metrics.jsonl", ".hydra/overrides.yaml")
# The runs frame's first columns, in every frame; summary.json's other fields follow.
RUN_COLUMNS = ("path", "status", "seed", "overrides", "error", "epochs", "wall_time_s")


@dataclass(frozen=True)
class RunFrames:
    """The records of some runs; `run` (0, 1, ... in the order found) links the frames.

    - `runs`: index `run`; `path`, `status` (`missing` without summary.json), `seed`,
      `overrides` (tuple), `error` (`no summary.json` without one), `epochs` (completed, else
      the number of epoch rows), `wall_time_s`, then every other scalar field of summary.json
      (`final_val_acc`, `best_val_acc`, `best_epoch`, ...).
    - `params`: index `run`; one column per override key (`optimizer.lr`), the value as written
      (a string; missing where the run has no such override or deletes it with `~key`).
    - `epochs`: `run`, `epoch` and the epoch rows' fields; a repeated epoch (a resumed run)
      keeps its last row.
    - `steps`: `run`, `step`, `epoch` (fractional) and the step rows' fields (`lr`, ...).
    """

    runs: pd.DataFrame
    params: pd.DataFrame
    epochs: pd.DataFrame
    steps: pd.DataFrame


def is_run_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in RECORD_FILES)


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run dirs given directly or found below the given dirs (e.g. a multirun dir), in order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"not a directory: {p}")
        if is_run_dir(p):
            candidates = [p]
        else:
            dirs = {
                f.parent.parent if f.parent.name == ".hydra" else f.parent
                for name in RECORD_FILES
                for f in p.rglob(name)
            }
            # a run's own subfolders (e.g. a nested tool's output) are part of that run
            candidates = sorted(
                (d for d in dirs if not any(a in dirs for a in d.parents)), key=_natural_key
            )
        found += [c for c in candidates if c not in found]
    return found


def load_runs(paths: Iterable[str | Path]) -> RunFrames:
    """The records of every run under `paths` (see `find_run_dirs`) as DataFrames."""
    runs, params, epochs, steps = [], [], [], []
    for num, run_dir in enumerate(find_run_dirs(paths)):
        summary = _read_json(run_dir / "summary.json")
        overrides = read_overrides(run_dir, summary)
        run_epochs, run_steps = _read_metrics(run_dir / "metrics.jsonl")
        runs.append(_run_row(run_dir, summary, overrides, len(run_epochs)))
        params.append(override_dict(overrides))
        epochs += [{"run": num, **row} for row in run_epochs]
        steps += [{"run": num, **row} for row in run_steps]
    index = pd.RangeIndex(len(runs), name="run")
    return RunFrames(
        runs=pd.DataFrame(runs, index=index, columns=_run_columns(runs)).astype({"seed": "Int64"}),
        params=pd.DataFrame(params, index=index),
        epochs=_numeric_frame(epochs, ("run", "epoch"), integer=("run", "epoch")),
        steps=_numeric_frame(steps, ("run", "step", "epoch"), integer=("run",)),
    )


def read_overrides(run_dir: Path, summary: dict[str, Any] | None = None) -> list[str]:
    """`.hydra/overrides.yaml`, else the summary's `overrides`."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        return [str(o) for o in (yaml.safe_load(overrides_file.read_text()) or [])]
    return [str(o) for o in (summary or {}).get("overrides", [])]


def override_key(override: str) -> str:
    """`+a.b=1` -> `a.b`; `~a` -> `a`."""
    return override.split("=", 1)[0].lstrip("+~")


def override_dict(overrides: Iterable[str]) -> dict[str, str | None]:
    return {override_key(o): o.split("=", 1)[1] if "=" in o else None for o in overrides}


def _run_row(
    run_dir: Path, summary: dict[str, Any] | None, overrides: list[str], epoch_rows: int
) -> dict[str, Any]:
    fields = {k: v for k, v in (summary or {}).items() if _is_scalar(v)}
    test = latest_test(run_dir)  # eval.py's newest test-split evaluation (eval.json)
    if test is not None:
        fields.update(test_acc=test.get("accuracy"), test_loss=test.get("loss"))
    error = fields.get("error") or ("no summary.json" if not summary else None)
    return {
        **{k: None if _is_non_finite(v) else v for k, v in fields.items()},
        "path": str(run_dir),
        "status": str(summary.get("status", "missing")) if summary else "missing",
        "seed": _seed(summary, overrides),
        "overrides": tuple(overrides),
        "error": str(error) if error else None,
        "epochs": _epochs_done(summary, epoch_rows),
        "wall_time_s": _finite(fields.get("wall_time_s")),
    }


def latest_test(run_dir: Path) -> dict[str, Any] | None:
    """eval.py's newest test-split evaluation in `eval.json` (lrlab.tracking.evaluations)."""
    entries = _read_json(run_dir / "eval.json") or {}
    tests = [e for e in entries.values() if isinstance(e, dict) and e.get("split") == "test"]
    return max(tests, key=lambda e: str(e.get("evaluated_at", "")), default=None)


def _run_columns(rows: list[dict[str, Any]]) -> list[str]:
    extra = dict.fromkeys(k for row in rows for k in row if k not in RUN_COLUMNS)
    return [*RUN_COLUMNS, *extra]


def _seed(summary: dict[str, Any] | None, overrides: list[str]) -> int | None:
    if summary and isinstance(summary.get("seed"), int):
        return int(summary["seed"])
    value = override_dict(overrides).get("seed")
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _epochs_done(summary: dict[str, Any] | None, epoch_rows: int) -> int:
    done = (summary or {}).get("epochs_completed")
    return int(done) if isinstance(done, int) else epoch_rows


def _read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Epoch rows (last one per epoch, in epoch order) and step rows (last one per step)."""
    epochs: dict[int, dict[str, Any]] = {}
    steps: dict[Any, dict[str, Any]] = {}
    if not path.is_file():
        return [], []
    for n, line in enumerate(path.read_text().splitlines()):
        try:
            row = json.loads(line)  # json reads the NaN/Infinity a hand-written file may hold
        except json.JSONDecodeError:
            continue  # a line cut short by a hard crash
        if not isinstance(row, dict) or "epoch" not in row:
            continue
        fields = {k: v for k, v in row.items() if k != "type" and _is_scalar(v)}
        if row.get("type") == "epoch":
            epochs[int(row["epoch"])] = fields  # a resumed run may repeat an epoch: keep the last
        elif row.get("type") == "step":
            steps.pop(row.get("step", n), None)  # re-insert: a repeated step moves to the end
            steps[row.get("step", n)] = fields
    return [epochs[e] for e in sorted(epochs)], list(steps.values())


def _numeric_frame(
    rows: list[dict[str, Any]], first: tuple[str, ...], integer: tuple[str, ...]
) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame = frame.reindex(columns=[*first, *(c for c in frame.columns if c not in first)])
    frame = frame.apply(pd.to_numeric, errors="coerce").replace([np.inf, -np.inf], np.nan)
    return frame.astype(dict.fromkeys(integer, int))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _is_non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]
