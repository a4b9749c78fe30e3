"""Experiment trackers beyond the always-written local run records (see `records.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig


class Tracker(Protocol):
    def log_metrics(self, row: dict[str, Any]) -> None: ...  # a metrics.jsonl row (step or epoch)
    def log_summary(self, summary: dict[str, Any]) -> None: ...
    def log_image(self, name: str, path: Path) -> None: ...
    def finish(self, status: str) -> None: ...


def build_trackers(cfg: DictConfig) -> list[Tracker]:
    """Trackers selected by the `logger` group (`logger=local` adds none)."""
    return []
