"""The `lr_find:` config: the range test's settings and which suggestion `optimizer.lr=auto` takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lrlab.errors import ConfigError
from lrlab.lr_finder.range_test import MODES
from lrlab.lr_finder.suggestions import SUGGESTIONS


@dataclass
class LrFindConfig:
    start_lr: float
    end_lr: float
    num_it: int  # optimizer steps (each takes trainer.accumulate_grad_batches batches)
    mode: str  # exp: lr_i = start*(end/start)**(i/(num_it-1)) | linear
    smooth_beta: float  # EMA of the loss, bias-corrected (0 = no smoothing)
    stop_div: bool  # stop once the smoothed loss exceeds diverge_threshold x best so far
    diverge_threshold: float  # (a NaN/inf loss always stops the test)
    suggestion: str  # valley | slide | minimum | steep: what optimizer.lr=auto uses

    def __post_init__(self) -> None:
        if not self.start_lr > 0:
            raise ConfigError(f"lr_find.start_lr must be a positive number, got {self.start_lr!r}")
        if not self.end_lr > self.start_lr:
            raise ConfigError(
                f"lr_find.end_lr must be > lr_find.start_lr={self.start_lr}, got {self.end_lr!r}"
            )
        if self.num_it < 2:
            raise ConfigError(f"lr_find.num_it must be an integer >= 2, got {self.num_it!r}")
        if self.mode not in MODES:
            raise ConfigError(f"lr_find.mode={self.mode!r} is not one of {list(MODES)}")
        if not 0 <= self.smooth_beta < 1:
            raise ConfigError(f"lr_find.smooth_beta must be in [0, 1), got {self.smooth_beta!r}")
        if not self.diverge_threshold > 1:
            raise ConfigError(
                f"lr_find.diverge_threshold must be a number > 1, got {self.diverge_threshold!r}"
            )
        if self.suggestion not in SUGGESTIONS:
            raise ConfigError(
                f"lr_find.suggestion={self.suggestion!r} is not one of {list(SUGGESTIONS)}"
            )

    def range_test_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `range_test` (all but `suggestion`)."""
        return {
            "start_lr": float(self.start_lr),
            "end_lr": float(self.end_lr),
            "num_it": int(self.num_it),
            "mode": str(self.mode),
            "smooth_beta": float(self.smooth_beta),
            "stop_div": bool(self.stop_div),
            "diverge_threshold": float(self.diverge_threshold),
        }
