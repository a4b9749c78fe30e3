"""Local run records: `metrics.jsonl` (one JSON row per line) and `summary.json`.

Rows are flushed as they are written and the summary is replaced atomically, so a run that is
killed keeps everything it recorded so far. Trackers (W&B, ...) receive the same rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lrlab.errors import unwritable
from lrlab.parallel import is_main_process
from lrlab.tracking.base import Tracker
from lrlab.utils import json_safe

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(json.dumps(json_safe(data), indent=2) + "\n")
    except OSError as e:  # disk full: the previous file stays, no partial one beside it
        tmp.unlink(missing_ok=True)
        raise unwritable(e, path) or e from e
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, or None when it is missing or cut short."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete row; a last line cut short by a hard kill is skipped."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def rows_until(rows: Iterable[dict[str, Any]], epoch: int, step: int) -> list[dict[str, Any]]:
    """The rows a checkpoint at (`epoch` completed epochs, `step` optimizer steps) holds."""
    return [
        row
        for row in rows
        if (row.get("type") == "step" and row["step"] <= step)
        or (row.get("type") == "epoch" and row["epoch"] <= epoch)
    ]


class RunRecorder:
    """Writes metrics rows and the summary into `run_dir`, and forwards them to trackers. In a
    data parallel run only rank 0 writes (the other processes compute the same rows)."""

    def __init__(self, run_dir: Path, trackers: list[Tracker] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.trackers = trackers or []
        self.metrics_path = self.run_dir / METRICS_FILE
        self.writes = is_main_process()
        self._metrics = None
        if self.writes:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # Line buffering: each row reaches the file when it is written.
            self._metrics = open(self.metrics_path, "a", buffering=1)  # noqa: SIM115

    def log(self, row: dict[str, Any]) -> None:
        row = json_safe(row)
        if self._metrics is not None:
            try:
                self._metrics.write(json.dumps(row) + "\n")
            except OSError as e:  # a partial last line is skipped when the rows are read
                raise unwritable(e, self.metrics_path) or e from e
        for tracker in self.trackers:
            tracker.log_metrics(row)

    def restart_from(self, rows: list[dict[str, Any]]) -> None:
        """Make metrics.jsonl hold exactly `rows` (a resumed run's records up to its
        checkpoint), replacing the file atomically, so no row is lost or written twice."""
        if self._metrics is None:
            return
        self._metrics.close()
        tmp = self.metrics_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(json_safe(row)) + "\n" for row in rows))
        os.replace(tmp, self.metrics_path)
        self._metrics = open(self.metrics_path, "a", buffering=1)  # noqa: SIM115

    def log_image(self, name: str, path: Path) -> None:
        for tracker in self.trackers:
            tracker.log_image(name, path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writes:
            write_json_atomic(self.run_dir / SUMMARY_FILE, summary)

    def close(self, summary: dict[str, Any]) -> None:
        """Final summary to disk first, then trackers: a tracker failure cannot lose it."""
        self.write_summary(summary)
        if self._metrics is not None:
            self._metrics.close()
        for tracker in self.trackers:
            tracker.log_summary(json_safe(summary))
            tracker.finish(summary["status"])
