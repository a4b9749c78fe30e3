"""What the Hydra entry points share: one-line errors for bad input, and sweep policy.

Sweep policy: in a multirun a failing job is recorded in its own `summary.json` and the sweep
goes on; when all jobs have run, `SweepReport` prints one line per job and the sweep exits
with status 1 if any job failed (a diverged job is a result, not a failure: exit 0).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lrlab.errors import ConfigError

log = logging.getLogger(__name__)


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_job(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any] | None:
    try:
        return task(cfg)
    except ConfigError as e:
        if is_multirun():
            log.error("job failed: %s (recorded in summary.json; the sweep goes on)", e)
            return None
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception:
        if is_multirun():
            log.exception("job failed (recorded in summary.json; the sweep goes on)")
            return None
        raise


class SweepReport(Callback):
    """After a multirun: one line per job; exit 1 if any job failed.

    `describe` reads a job's result (train.py: its summary.json); find_lr.py subclasses it."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        failed = []
        for job_dir in sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=_job_order):
            overrides = _read_overrides(job_dir)
            if overrides is None:
                continue  # not a job dir
            text, ok = self.describe(job_dir)
            print(f"[{job_dir.name}] {' '.join(overrides) or '(no overrides)'}: {text}")
            if not ok:
                failed.append(job_dir.name)
        print(f"sweep dir: {sweep_dir}")
        if failed:
            print(f"error: {len(failed)} job(s) failed: {', '.join(failed)}", file=sys.stderr)
            raise SystemExit(1)

    def describe(self, job_dir: Path) -> tuple[str, bool]:
        """The job's line and whether it succeeded (a diverged run is a result: it did)."""
        summary_file = job_dir / "summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
        status = summary.get("status", "missing")
        text = status
        if summary.get("best_val_acc") is not None:
            text += f", best_val_acc {summary['best_val_acc']:.4f}"
        ok = status in ("completed", "diverged")
        if not ok and summary.get("error"):
            text += f" ({summary['error']})"
        return text, ok


def _job_order(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (sys.maxsize, path.name)


def _read_overrides(job_dir: Path) -> list[str] | None:
    import yaml

    f = job_dir / ".hydra" / "overrides.yaml"
    return yaml.safe_load(f.read_text()) or [] if f.is_file() else None
