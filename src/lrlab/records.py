"""Local run records: `metrics.jsonl` (one JSON row per line) and `summary.json`.

Rows are flushed as they are written and the summary is replaced atomically, so a run that is
killed keeps everything it recorded so far. Trackers (W&B, ...) receive the same rows.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from lrlab.loggers import Tracker
from lrlab.utils import json_safe

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=2) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class RunRecorder:
    """Writes metrics rows and the summary into `run_dir`, and forwards them to trackers."""

    def __init__(self, run_dir: Path, trackers: list[Tracker] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.trackers = trackers or []
        # Line buffering: each row reaches the file when it is written.
        self._metrics = open(self.run_dir / METRICS_FILE, "a", buffering=1)  # noqa: SIM115

    def log(self, row: dict[str, Any]) -> None:
        row = json_safe(row)
        self._metrics.write(json.dumps(row) + "\n")
        for tracker in self.trackers:
            tracker.log_metrics(row)

    def copy_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rows of an earlier run (a resumed one's start), to the file only."""
        for row in rows:
            self._metrics.write(json.dumps(row) + "\n")

    def log_image(self, name: str, path: Path) -> None:
        for tracker in self.trackers:
            tracker.log_image(name, path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.run_dir / SUMMARY_FILE, summary)

    def close(self, summary: dict[str, Any]) -> None:
        """Final summary to disk first, then trackers: a tracker failure cannot lose it."""
        self.write_summary(summary)
        self._metrics.close()
        for tracker in self.trackers:
            tracker.log_summary(json_safe(summary))
            tracker.finish(summary["status"])
