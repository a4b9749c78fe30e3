"""What a tracker does: receive the rows, summary and images the local records get."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    def log_metrics(self, row: dict[str, Any]) -> None: ...  # a metrics.jsonl row (step or epoch)
    def log_summary(self, summary: dict[str, Any]) -> None: ...
    def log_image(self, name: str, path: Path) -> None: ...
    def finish(self, status: str) -> None: ...
