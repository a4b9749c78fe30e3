"""Test helpers: compose the real config (as train.py does), run the entry points as a user
would, make tiny image folders, and build components from a composed config."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from lrlab.tasks.config import register_configs
from lrlab.tracking import LoggerConfig

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
FLOWERS = ROOT.parent / "shared" / "data" / "flowers"

register_configs()

# Where the flowers' split and channel statistics are cached for every test of a session (and
# every xdist worker of it: the cache files are written atomically). Each is a pass over all
# 4,300 images (~4 s); tests that check the caches themselves use folders of their own.
# tests/conftest.py sets it; None: each test's own data dir.
shared_flowers_cache: Path | None = None
# A dir every xdist worker of this test session shares (tests/conftest.py sets it).
session_dir: Path | None = None


def made_once(name: str, make: Callable[[Path], None]) -> Path:
    """`session_dir / name`, filled by `make(dir)` once per test session: the first worker to
    ask makes it under a file lock, the others wait for it. Only read what it holds."""
    from filelock import FileLock

    assert session_dir is not None, "made_once needs tests/conftest.py's session_dir"
    made = session_dir / name
    with FileLock(f"{made}.lock"):
        if not (made / ".made").exists():
            shutil.rmtree(made, ignore_errors=True)
            made.mkdir(parents=True)
            make(made)
            (made / ".made").touch()
    return made


def compose_cfg(overrides: list[str], out_dir: Path, config_name: str = "train") -> DictConfig:
    """The config train.py would get for `overrides`, writing into `out_dir`."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(out_dir)
        cfg.paths.data_dir = str(out_dir / "data")
        cfg.trainer.progress_bar = False
        data = cfg.get("data") or {}
        if shared_flowers_cache and "stats_dir" in data and str(data.get("root")) == str(FLOWERS):
            cfg.data.stats_dir = str(shared_flowers_cache)
    return cfg


def logger_config(**loggers: dict[str, Any]) -> LoggerConfig:
    """The checked `cfg.logger` trackers are built from: for each named logger (`wandb=...`),
    its conf/logger/<name>.yaml values with the given ones on top."""
    node = OmegaConf.structured(LoggerConfig)
    for name, values in loggers.items():
        yaml = OmegaConf.load(CONF / "logger" / f"{name}.yaml")
        node = OmegaConf.merge(node, yaml, {name: values})
    return OmegaConf.to_object(node)  # type: ignore[return-value]


def run_cli(
    script: str, *args: str, cwd: Path, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run an entry point as a user would, from `cwd`, with outputs under `cwd`."""
    env = {**os.environ, "PROJECT_ROOT": str(cwd), **(env or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_image_folder(root: Path, classes: dict[str, int], size: int = 20, seed: int = 0) -> Path:
    """Class folders of small random PNGs; each class has its own mean colour so it is learnable."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            base = np.zeros((size, size, 3)) + 60 * (k + 1)
            pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"img_{i:03d}.png")
    return root


def requires_flowers():
    return pytest.mark.skipif(
        not FLOWERS.is_dir(), reason=f"flowers data not found at {FLOWERS} (see shared/data/README)"
    )


def build_data_from(cfg: DictConfig):
    """The loaders training builds for `cfg`."""
    from lrlab.data import build_data

    return build_data(cfg.data, seed=cfg.seed, num_workers=cfg.trainer.num_workers or 0)


def build_optimizer_from(cfg: DictConfig, model, lr: float | None = None):
    """The optimizer training builds for `cfg` over `model` (the model's layer-wise settings)."""
    from lrlab.models import training_settings
    from lrlab.optim import build_optimizer

    return build_optimizer(cfg.optimizer, model, training_settings(cfg.model), lr=lr)


def freezer_from(cfg: DictConfig, model, epochs: int | None = None):
    """The freezer training builds for `cfg` over `model`."""
    from lrlab.models import training_settings
    from lrlab.models.freezing import Freezer

    settings = training_settings(cfg.model)
    return Freezer.from_settings(settings, model, epochs, cfg.model.get("pretrained"))


def scheduler_cfg(name: str, **overrides: Any) -> dict[str, Any]:
    """conf/scheduler/<name>.yaml as a plain dict (its values: the one source of the defaults),
    with `overrides` on top; a file's `defaults: [other]` is merged under it as Hydra does."""
    from omegaconf import OmegaConf

    node = OmegaConf.to_container(OmegaConf.load(CONF / "scheduler" / f"{name}.yaml"))
    base: dict[str, Any] = {}
    for parent in node.pop("defaults", []):  # type: ignore[union-attr]
        if parent != "_self_":
            base.update(scheduler_cfg(parent))
    return {**base, **node, **overrides}  # type: ignore[dict-item]
