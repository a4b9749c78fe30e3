"""Shared fixtures (the helpers they use are in tests/helpers)."""

from __future__ import annotations

from lrlab.runtime import configure_process

# As train.py does, before torch loads: OpenMP threads wait passively. Spinning ones made each
# tiny optimizer step of a test take ~0.2 s instead of ~2 ms whenever another process shared
# the cores (benchmarks/README.md: "The test suite").
configure_process()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from tests.helpers import compose_cfg, make_image_folder  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides: str, out: str = "run") -> DictConfig:
        return compose_cfg(list(overrides), tmp_path / out)

    return make


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images", {"cat": 10, "dog": 10, "fox": 10})
