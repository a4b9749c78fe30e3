"""`logger=tensorboard`: the scalars W&B gets (per-step lr of every group, momentum, losses,
epoch metrics; same names: `train/loss`, `val/acc`, `lr/group_1`, ...) as TensorBoard event
files in `<run dir>/tensorboard/` (`tensorboard --logdir outputs`). Never raises into training."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from lrlab.tracking.naming import wandb_row
from lrlab.utils import json_safe


@dataclass
class TensorBoardConfig:
    subdir: str = MISSING  # in the run dir (the values: conf/logger/tensorboard.yaml)
    flush_secs: int = MISSING


class TensorBoardTracker:
    def __init__(self, log_dir: Path, flush_secs: int = 30, tags: list[str] | None = None) -> None:
        self.log_dir, self.flush_secs = log_dir, flush_secs
        self.writer: Any = None
        try:
            self.writer = self._open(None)
            if tags:
                self.writer.add_text("tags", ", ".join(map(str, tags)), 0)
        except Exception as e:
            self._fail("could not start", e)

    def _open(self, purge_step: int | None) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.log_dir), flush_secs=self.flush_secs, purge_step=purge_step)

    def _fail(self, what: str, error: Exception) -> None:
        warnings.warn(
            f"TensorBoard logging disabled for this run: {what} ({type(error).__name__}: "
            f"{error}); the local records continue",
            RuntimeWarning,
            stacklevel=3,
        )
        self.writer = None

    def restart(self, kept_rows: list[dict[str, Any]]) -> None:
        """A resumed run: events past the checkpoint's step are hidden (TensorBoard's purge)."""
        if self.writer is None or not kept_rows:  # a fresh start: nothing to hide
            return
        last = max((int(r.get("step") or 0) for r in kept_rows), default=0)
        try:
            self.writer.close()
            self.writer = self._open(last + 1)
        except Exception as e:
            self._fail("could not reopen", e)

    def log_metrics(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        values = wandb_row(row)
        step = values.pop("trainer/step", None)
        try:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
        except Exception as e:
            self._fail("log failed", e)

    def log_image(self, name: str, path: Path) -> None:
        if self.writer is None:
            return
        try:
            import numpy as np
            from PIL import Image

            with Image.open(path) as img:
                pixels = np.asarray(img.convert("RGB"))
            self.writer.add_image(f"plots/{name}", pixels, 0, dataformats="HWC")
        except Exception as e:
            self._fail("image log failed", e)

    def log_summary(self, summary: dict[str, Any]) -> None:
        if self.writer is None:
            return
        try:
            text = json.dumps(json_safe(summary), indent=1, default=str)
            self.writer.add_text("summary", f"```\n{text}\n```", 0)
        except Exception as e:
            self._fail("summary failed", e)

    def finish(self, status: str) -> None:
        if self.writer is None:
            return
        try:
            self.writer.add_text("status", status, 0)
            self.writer.close()
        except Exception as e:
            self._fail("finish failed", e)
        self.writer = None
