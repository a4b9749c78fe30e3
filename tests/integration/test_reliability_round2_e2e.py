"""Issue 16 with real processes: two trainers of one run dir, a joblib sweep whose main
process alone gets SIGTERM or SIGKILL, a sweep re-run that refuses its jobs, and a resume
of a diverged run with the config changed."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.helpers.cli import cli_in_process
from tests.helpers.interrupts import SLOW, start_cli, wait_for_steps

pytestmark = pytest.mark.slow

HELPERS_ENV = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
PACED = ["trainer.log_every_n_steps=1", "trainer.num_threads=1", SLOW]


def run(*args: str, cwd: Path, timeout: float = 300) -> tuple[int, str, str]:
    proc = start_cli(*args, cwd=cwd, env=HELPERS_ENV)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def run_here(*args: str, cwd: Path) -> tuple[int, str, str]:
    """The same command line in this process (checks of what a run refuses or reports)."""
    done = cli_in_process("train.py", *args, cwd=cwd)
    return done.returncode, done.stdout, done.stderr


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_second_trainer_of_a_run_dir_is_refused_and_a_killed_ones_lock_is_not_stale(tmp_path):
    run_dir = tmp_path / "run"
    # 0.4 s a step: the first (a real process) is still training when the second (this
    # process: no start-up) has started
    command = [
        *PACED,
        "+callbacks.pace.seconds=0.4",
        "trainer.epochs=1",
        "trainer.limit_train_batches=10",
        f"hydra.run.dir={run_dir}",
    ]
    first = start_cli(*command, cwd=tmp_path, env=HELPERS_ENV)
    try:
        wait_for_steps(first, run_dir / "metrics.jsonl", 3)
        refused = cli_in_process("train.py", *command, "trainer.resume=auto", cwd=tmp_path)
        code, err = refused.returncode, refused.stderr
        assert code == 2, err[-3000:]
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"error: {run_dir} is in use: process {first.pid} on ")
        assert socket.gethostname() in line and len(err.strip().splitlines()) == 1
        assert first.poll() is None  # the first one trains on
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # no clean-up: its lock note stays behind
        first.wait()
    done = cli_in_process("train.py", *command, "trainer.resume=auto", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert summary(run_dir)["status"] == "completed"


SWEEP = [
    "-m",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
    "seed=0,1,2,3",
    "trainer.epochs=2",
    *PACED,
]


def start_sweep(sweep: Path, tmp_path: Path):
    proc = start_cli(*SWEEP, f"hydra.sweep.dir={sweep}", cwd=tmp_path, env=HELPERS_ENV)
    for job in ("0", "1"):  # both workers are training, past their set-up
        wait_for_steps(proc, sweep / job / "metrics.jsonl", 3, timeout=240)
    return proc


def test_sigterm_to_a_joblib_sweeps_main_process_only_stops_it_like_ctrl_c(tmp_path):
    sweep = tmp_path / "sweep"
    proc = start_sweep(sweep, tmp_path)
    os.kill(proc.pid, signal.SIGTERM)  # `kill PID`, `docker stop`: the main process only
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    for job in ("0", "1"):
        s = summary(sweep / job)
        assert s["status"] == "preempted" and s["checkpoint"]["step"] >= 3
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
    assert not (sweep / "2" / "summary.json").exists()  # the queued jobs did not start
    assert not (sweep / "3" / "summary.json").exists()
    assert "[0] " in out and "[1] " in out


def test_sigkill_of_a_joblib_sweeps_main_process_leaves_no_workers_behind(tmp_path):
    sweep = tmp_path / "sweep"
    proc = start_sweep(sweep, tmp_path)
    workers = [pid for pid in children(proc.pid) if alive(pid)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers still alive after their main process was killed: {left}"
    for job in ("0", "1"):  # each stopped its job as on SIGTERM: checkpointed
        s = summary(sweep / job)
        assert s["status"] == "preempted" and s["checkpoint"] is not None


def test_a_sweep_rerun_whose_jobs_are_not_resumed_says_so_per_job_and_exits_2(tmp_path):
    sweep = tmp_path / "sweep"
    common = ["-m", "trainer.epochs=1", "trainer.num_threads=1", f"hydra.sweep.dir={sweep}"]
    code, _, err = run_here(*common, "seed=0,1", cwd=tmp_path)
    assert code == 0, err[-3000:]
    before = {j: (sweep / j / "summary.json").read_bytes() for j in ("0", "1")}
    code, out, err = run_here(*common, "seed=1,0", "trainer.resume=auto", cwd=tmp_path)
    assert code == 2, err[-3000:]
    for job, change in (("0", "seed (0 -> 1)"), ("1", "seed (1 -> 0)")):
        line = next(li for li in out.splitlines() if li.startswith(f"[{job}] "))
        assert ": refused: trainer.resume: this config differs" in line and change in line
        assert "(the dir still holds: completed" in line
    assert "2 job(s) refused: 0, 1" in err
    assert {j: (sweep / j / "summary.json").read_bytes() for j in ("0", "1")} == before


def test_resume_auto_of_a_diverged_run_with_a_fixed_lr_names_the_changed_key(tmp_path):
    run_dir = tmp_path / "run"
    common = ["trainer.epochs=1", "trainer.num_threads=1", f"hydra.run.dir={run_dir}"]
    code, out, err = run_here(*common, "optimizer.lr=1e6", cwd=tmp_path)
    assert code == 0 and summary(run_dir)["status"] == "diverged", err[-3000:]
    code, out, err = run_here(*common, "optimizer.lr=1e-3", "trainer.resume=auto", cwd=tmp_path)
    assert code == 2, out + err[-3000:]
    assert "nothing to train" not in out
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: trainer.resume: this config differs from the one ")
    assert "optimizer.lr (1000000.0 -> 0.001)" in line


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs of `size` (needs root); remount it read-only with `.read_only()`."""
    import subprocess

    mounted: list[Path] = []

    class Disk:
        def __init__(self, size: str) -> None:
            self.path = tmp_path / f"disk{len(mounted)}"
            self.path.mkdir()
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
            mounted.append(self.path)

        def read_only(self) -> None:
            subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    yield Disk
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_run_dir_reports_a_finished_run_and_refuses_training_in_one_line(
    tmp_path, tmpfs
):
    disk = tmpfs("8m")
    run_dir = disk.path / "run"
    common = ["trainer.num_threads=1", "trainer.limit_train_batches=2", f"hydra.run.dir={run_dir}"]
    code, _, err = run_here(*common, "trainer.epochs=1", cwd=tmp_path)
    assert code == 0, err[-3000:]
    disk.read_only()
    code, out, err = run_here(*common, "trainer.epochs=1", "trainer.resume=auto", cwd=tmp_path)
    assert code == 0 and "nothing to train" in out, err[-3000:]
    assert "Traceback" not in err
    code, _, err = run_here(*common, "trainer.epochs=2", "trainer.resume=auto", cwd=tmp_path)
    assert code == 2, err[-3000:]
    assert err.strip() == (
        f"error: {run_dir} is not writable (Read-only file system); choose another "
        "hydra.run.dir / hydra.sweep.dir (a finished run there is still reported with "
        "trainer.resume=auto)"
    )
    code, _, err = run_here(*common, f"hydra.run.dir={disk.path / 'new'}", cwd=tmp_path)
    assert code == 2 and err.strip() == (
        f"error: cannot write {disk.path / 'new'}: Read-only file system"
    ), err[-3000:]


def test_a_full_disk_is_one_line_and_exit_1(tmp_path, tmpfs):
    disk = tmpfs("2m")  # one digits checkpoint (1.4 MB) fits, a second one beside it does not
    run_dir = disk.path / "run"
    code, _, err = run_here(
        "trainer.epochs=3", "trainer.num_threads=1", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert code == 1, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: cannot write {run_dir}/checkpoints/last.ckpt: No space left")
    assert summary(run_dir)["status"] == "failed"
