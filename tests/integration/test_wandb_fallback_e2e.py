"""A 2-job sweep with W&B unreachable (a closed local port, a fake API key): the first job
waits `logger.wandb.init_timeout` once and falls back to offline, the second starts offline at
once; neither leaves a stray run dir beside its offline run."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli
from tests.unit.test_wandb_fallback import closed_port, wandb_entries

pytest.importorskip("wandb")


@pytest.mark.slow
def test_a_sweep_without_network_waits_for_wandb_once(tmp_path):
    from tests.integration.test_wandb_e2e import offline_run

    env = {
        "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
        "WANDB_API_KEY": "0123456789" * 4,
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb_data"),
        "NETRC": str(tmp_path / "no_netrc"),
        "WANDB_MODE": "",
    }
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "train.py", "-m", "seed=0,1", "debug=fast", "data.image_size=8", "trainer.num_threads=1",
        "logger=wandb", "logger.wandb.init_timeout=3", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("W&B online init failed") == 1
    assert "logger.wandb.init_timeout (now 3 s)" in proc.stderr
    assert proc.stdout.count("logging offline without trying W&B") == 1  # job 1 did not wait
    assert (sweep / ".wandb_offline").is_file()
    for job in ("0", "1"):
        assert wandb_entries(sweep / job) == [
            "debug-internal.log", "debug.log", "latest-run", "offline-run",
        ]  # fmt: skip
        assert offline_run(sweep / job)["exit_code"] == 0
