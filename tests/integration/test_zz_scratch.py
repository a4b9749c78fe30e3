import os, pytest
from pathlib import Path
from tests.helpers import ROOT
from tests.integration.test_launchers import HELPERS_ENV, summary
@pytest.mark.slow
def test_ctrl_c_stops_a_joblib_sweep_after_checkpointing_its_running_jobs(tmp_path):
    """Ctrl-C (SIGINT to the process group) in a 4-job sweep, 2 at a time: the 2 running jobs
    checkpoint and are recorded as interrupted, the other 2 do not start, the sweep reports
    and exits 130; `trainer.resume=auto` then finishes all four."""
    import subprocess
    import sys

    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "seed=0,1,2,3",
        "trainer.epochs=2",
        "+callbacks.ctrl_c._target_=tests.helpers.signal_at.SignalAt",
        "+callbacks.ctrl_c.step=30",
        "+callbacks.ctrl_c.signal=SIGINT",
        "+callbacks.ctrl_c.group=true",
        f"+callbacks.ctrl_c.once={tmp_path / 'signalled'}",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), **HELPERS_ENV}
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    result = subprocess.run(
        cmd,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,  # its own process group: the signal reaches the sweep only
    )
    assert result.returncode == 130, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    stopped = [summary(sweep / j) for j in ("0", "1")]
    assert all(s["status"] == "interrupted" for s in stopped)
    # The job that reached step 30 checkpointed there; the other one did wherever it was, unless
    # the signal came before its first step (its worker still starting: on a loaded machine)
    assert any(s.get("checkpoint") and s["checkpoint"]["step"] >= 30 for s in stopped)
    assert all(s.get("checkpoint") or not s.get("steps") for s in stopped)
    assert not (sweep / "2" / "summary.json").exists()
    assert "[0] " in result.stdout and "[1] " in result.stdout

    again = subprocess.run(
        [*cmd, "trainer.resume=auto"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert again.returncode == 0, again.stdout[-6000:] + str([summary(sweep / j) for j in "01"]) + result.stderr[-3000:]
    assert all(summary(sweep / j)["status"] == "completed" for j in "0123")


