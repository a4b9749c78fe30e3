"""Shared fixtures (the helpers they use are in tests/helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from tests.helpers import compose_cfg, make_image_folder

torch.set_num_threads(2)


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides: str, out: str = "run") -> DictConfig:
        return compose_cfg(list(overrides), tmp_path / out)

    return make


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images", {"cat": 10, "dog": 10, "fox": 10})
