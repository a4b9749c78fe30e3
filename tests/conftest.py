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

import tests.helpers  # noqa: E402
from tests.helpers import compose_cfg, make_image_folder  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def _shared_flowers_cache(tmp_path_factory):
    """One flowers split and statistics cache, and one dir of runs made once, for the session:
    under pytest-xdist the workers' base temp dirs share a parent (`tests.helpers.
    shared_flowers_cache`, `tests.helpers.session_dir`)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if base.name.startswith("popen-gw") else base
    tests.helpers.shared_flowers_cache = shared / "flowers-cache"
    tests.helpers.session_dir = shared / "session"
    yield
    tests.helpers.shared_flowers_cache = tests.helpers.session_dir = None


@pytest.fixture
def make_cfg(tmp_path):
    def make(*overrides: str, out: str = "run") -> DictConfig:
        return compose_cfg(list(overrides), tmp_path / out)

    return make


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images", {"cat": 10, "dog": 10, "fox": 10})


# One trained run that tests only read: its records (metrics.jsonl, summary.json, checkpoint).
RECORDED_RUN = [
    "optimizer=sgd",  # onecycle (the default schedule) also cycles SGD's momentum
    "trainer.epochs=2",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="session")
def recorded_run(tmp_path_factory) -> tuple[DictConfig, dict, list[dict]]:
    """(config, summary, metrics.jsonl rows) of a short digits run, trained once per session.
    Read it; never write into its run dir."""
    from lrlab.tasks.train import train
    from lrlab.tracking import read_jsonl

    cfg = compose_cfg(RECORDED_RUN, tmp_path_factory.mktemp("recorded") / "run")
    summary = train(cfg)
    return cfg, summary, read_jsonl(Path(cfg.paths.output_dir) / "metrics.jsonl")


def pytest_sessionfinish(session, exitstatus):
    """End the worker processes an in-process run left alive (persistent DataLoader workers of a
    loader still referenced when the session ends): the interpreter's exit would wait on them
    (seen once from a fresh clone, after every test had passed)."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(timeout=5)
