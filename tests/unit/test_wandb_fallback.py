"""W&B without network: the online start falls back to offline after `init_timeout`, once per
sweep (the sweep's later jobs start offline at once), and the failed attempt leaves nothing
behind. W&B's endpoint is a closed local port: no real network is used."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from lrlab import tracking
from lrlab.tracking import naming, wandb_reach, wandb_tracker
from tests.helpers import logger_config

wandb = pytest.importorskip("wandb")

TIMEOUT = 2  # logger.wandb.init_timeout of these tests: each online attempt waits this long


@pytest.fixture
def sweep_report():
    """A SweepReport; the stop-signal handlers its on_multirun_start installs are removed
    afterwards (they would outlive the test in this process)."""
    from lrlab.cli.sweeps import SweepReport

    yield SweepReport()
    SweepReport.end_signals()


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An API key (so mode=auto means online) and a W&B server that refuses connections."""
    env = {
        "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
        "WANDB_API_KEY": "0123456789" * 4,
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
        "NETRC": str(tmp_path / "no_netrc"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    # These tests are about wandb.init's own failure: lrlab's quick check of the endpoint
    # (tested in test_reliability_round2.py) would decide before it
    monkeypatch.setattr(wandb_reach, "endpoint_problem", lambda *args, **kwargs: None)
    # wandb reads the environment once per process (its setup singleton): an earlier test's
    # setup would keep the default server and bypass the closed port
    wandb.teardown()
    yield env
    wandb.teardown()


def init_modes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The mode of every wandb.init call from now on."""
    modes: list[str] = []
    real_init = wandb.init

    def init(*args: Any, **kwargs: Any) -> Any:
        modes.append(kwargs["mode"])
        return real_init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", init)
    return modes


def job(monkeypatch, run_dir: Path, sweep_dir: Path | None, **wandb_cfg: Any):
    """A tracker as the training job in `run_dir` (of the sweep in `sweep_dir`) builds it."""
    context = {"job_name": "train", "overrides": [f"seed={run_dir.name}"], "sweep_dir": sweep_dir}
    monkeypatch.setattr(naming, "hydra_context", lambda: context)
    cfg = OmegaConf.create(
        {
            "paths": {"output_dir": str(run_dir)},
            "logger": {"wandb": {"project": "lrlab-test", "init_timeout": TIMEOUT, **wandb_cfg}},
        }
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (tracker,) = tracking.build_trackers(logger_config(**cfg.logger), run_dir, cfg)
    return tracker, [str(w.message) for w in caught if "W&B" in str(w.message)]


def wandb_entries(run_dir: Path) -> list[str]:
    """What `<run dir>/wandb/` holds, a run's dir by its kind (`offline-run`, `run`)."""
    kinds = ("offline-run-", "run-")
    return sorted(
        next((k[:-1] for k in kinds if p.name.startswith(k)), p.name)
        for p in (run_dir / "wandb").iterdir()
    )


@pytest.mark.slow  # waits TIMEOUT seconds for the unreachable server, starts wandb-core
def test_a_sweep_waits_for_wandb_once_then_goes_offline_at_once(
    tmp_path, monkeypatch, unreachable_wandb, capsys, sweep_report
):
    sweep = tmp_path / "sweep"
    modes = init_modes(monkeypatch)

    first, warned = job(monkeypatch, sweep / "0", sweep)
    assert modes == ["online", "offline"] and first.mode == "offline"
    (message,) = warned
    assert message.startswith("W&B online init failed (CommError: ")
    assert "connection refused" in message and "Consider increasing" not in message
    assert f"raise logger.wandb.init_timeout (now {TIMEOUT} s)" in message
    assert "logger.wandb.mode=offline" in message
    assert message.endswith("the sweep's later jobs start offline at once")
    marker = sweep / wandb_tracker.OFFLINE_MARKER
    assert marker.read_text().startswith("W&B online init failed (CommError: ")
    # no stray run dir of the failed attempt beside the offline one; links point to it
    assert wandb_entries(sweep / "0") == [
        "debug-internal.log", "debug.log", "latest-run", "offline-run",
    ]  # fmt: skip
    assert (sweep / "0" / "wandb" / "latest-run").resolve().name.startswith("offline-run-")
    first.log_metrics({"type": "step", "step": 1, "epoch": 0.5, "train_loss": 1.0, "lr": 0.1})
    first.finish("completed")

    capsys.readouterr()
    second, warned = job(monkeypatch, sweep / "1", sweep)  # in another process: the same file
    assert modes == ["online", "offline", "offline"] and warned == []  # no second wait
    assert "logging offline without trying W&B" in capsys.readouterr().out
    assert wandb_entries(sweep / "1") == [
        "debug-internal.log", "debug.log", "latest-run", "offline-run",
    ]  # fmt: skip
    second.finish("completed")

    # The next invocation of the sweep (a resume) tries online again.
    config = OmegaConf.create(
        {"hydra": {"sweep": {"dir": str(sweep)}}, "trainer": {"resume": "auto"}}
    )
    sweep_report.on_multirun_start(config)
    assert not marker.exists()


@pytest.mark.slow
def test_a_single_run_falls_back_without_a_marker(tmp_path, monkeypatch, unreachable_wandb):
    modes = init_modes(monkeypatch)
    tracker, warned = job(monkeypatch, tmp_path / "run", None, mode="online")
    assert modes == ["online", "offline"] and tracker.mode == "offline"
    (message,) = warned
    assert "logger.wandb.init_timeout" in message and "later jobs" not in message
    assert not list(tmp_path.rglob(wandb_tracker.OFFLINE_MARKER))
    assert wandb_entries(tmp_path / "run") == [
        "debug-internal.log", "debug.log", "latest-run", "offline-run",
    ]  # fmt: skip
    tracker.finish("completed")


def test_offline_and_disabled_modes_never_try_online(tmp_path, monkeypatch, unreachable_wandb):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / wandb_tracker.OFFLINE_MARKER).write_text("earlier failure\n")
    modes = init_modes(monkeypatch)
    tracker, warned = job(monkeypatch, sweep / "0", sweep, mode="disabled")
    assert modes == [] and tracker.run is None and warned == []
    tracker, warned = job(monkeypatch, sweep / "1", sweep, mode="offline")
    assert modes == ["offline"] and warned == []
    tracker.finish("completed")


def test_the_marker_is_kept_when_a_sweep_dir_is_refused(tmp_path, capsys, sweep_report):
    """A refused sweep changes nothing in the sweep dir, the marker included."""
    sweep = tmp_path / "sweep"
    (sweep / "0").mkdir(parents=True)
    (sweep / "0" / "summary.json").write_text('{"status": "completed"}')
    marker = sweep / wandb_tracker.OFFLINE_MARKER
    marker.write_text("earlier failure\n")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "trainer": {}})
    with pytest.raises(SystemExit):
        sweep_report.on_multirun_start(config)
    assert marker.read_text() == "earlier failure\n"
