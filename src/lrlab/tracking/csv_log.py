"""`logger=csv`: the epoch rows of metrics.jsonl as a CSV table, for spreadsheets and pandas."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING


@dataclass
class CsvConfig:
    filename: str = MISSING  # in the run dir


class CsvTracker:
    """Epoch rows as a CSV table (columns from the first row), for spreadsheets and pandas."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fields: list[str] | None = None
        if path.is_file():  # a resumed run appends under the existing header
            with path.open(newline="") as f:
                self._fields = next(csv.reader(f), None)

    def log_metrics(self, row: dict[str, Any]) -> None:
        if row.get("type") != "epoch":
            return
        row = {k: v for k, v in row.items() if k != "type"}
        new = self._fields is None
        if new:
            self._fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def log_summary(self, summary: dict[str, Any]) -> None:
        pass

    def log_image(self, name: str, path: Path) -> None:
        pass

    def finish(self, status: str) -> None:
        pass
