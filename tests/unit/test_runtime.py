"""lrlab.runtime: process settings made before torch loads, and the benchmarks' first-step hook."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import lrlab
from lrlab import runtime
from lrlab.runtime import configure_process

ROOT = Path(lrlab.__file__).resolve().parents[2]  # the repository, wherever this test lives


class FakeLibc:
    """Records mallopt calls instead of changing this test process's allocator."""

    def __init__(self, accept: bool = True) -> None:
        self.calls: list[tuple[int, int]] = []
        self.accept = accept

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return int(self.accept)


@pytest.fixture
def libc(monkeypatch) -> FakeLibc:
    fake = FakeLibc()
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: fake)
    monkeypatch.setattr(runtime, "glibc", lambda: True)
    return fake


def test_sets_both_malloc_thresholds_mmap_first(libc):
    result = configure_process({})
    assert libc.calls == [
        (runtime.M_MMAP_THRESHOLD, runtime.MMAP_THRESHOLD),
        (runtime.M_TRIM_THRESHOLD, runtime.TRIM_THRESHOLD),
    ]
    assert "mallopt" in result["malloc"]


def test_is_idempotent(libc, monkeypatch):
    monkeypatch.setattr(runtime, "torch_loaded", lambda: False)  # as at train.py's top
    env: dict[str, str] = {}
    once = configure_process(env)
    env_once = dict(env)
    twice = configure_process(env)
    assert once == twice and env == env_once == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert libc.calls[:2] == libc.calls[2:]  # the same values again: no change


@pytest.mark.parametrize(
    "env, reason",
    [
        ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "LD_PRELOAD"),
        ({"LD_PRELOAD": "libtcmalloc_minimal.so.4"}, "LD_PRELOAD"),
        ({"MALLOC_TRIM_THRESHOLD_": "0"}, "environment"),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, "environment"),
    ],
)
def test_leaves_malloc_alone_where_the_user_chose(libc, env, reason):
    assert reason in configure_process(env)["malloc"]
    assert libc.calls == []


def test_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(runtime, "glibc", lambda: False)
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: pytest.fail("CDLL called"))
    assert configure_process({})["malloc"] == "unchanged (not glibc)"


def test_refused_mallopt_is_reported(monkeypatch):
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: FakeLibc(accept=False))
    monkeypatch.setattr(runtime, "glibc", lambda: True)
    assert "refused" in configure_process({})["malloc"]


def test_switch_off_changes_nothing(monkeypatch):
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: pytest.fail("CDLL called"))
    env = {"LRLAB_CONFIGURE_PROCESS": "0"}
    configure_process(env)
    assert env == {"LRLAB_CONFIGURE_PROCESS": "0"}


def test_openmp_policy_keeps_the_users_choice_and_is_too_late_after_torch(libc):
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert configure_process(env)["openmp"] == "OMP_WAIT_POLICY=ACTIVE"
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    env = {}  # this test process imported torch already (conftest)
    assert "torch was imported first" in configure_process(env)["openmp"]
    assert "OMP_WAIT_POLICY" not in env


def test_a_users_spin_count_is_kept_without_a_wait_policy(libc):
    """GOMP_SPINCOUNT=10000 (spin briefly, then sleep: ~4% faster than passive on a quiet
    machine) must not be overridden by lrlab's passive policy."""
    env = {"GOMP_SPINCOUNT": "10000"}
    assert configure_process(env)["openmp"] == "unchanged (GOMP_SPINCOUNT=10000)"
    assert "OMP_WAIT_POLICY" not in env and env["GOMP_SPINCOUNT"] == "10000"


def test_torchs_openmp_runtime_waits_passively():
    """The real effect: the OpenMP runtime torch loads does not spin (GNU OpenMP spins
    300000 times by default; its display says PASSIVE either way, the spin count tells)."""
    code = "from lrlab.runtime import configure_process; configure_process(); import torch"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_DISPLAY_ENV="VERBOSE", PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    if "GOMP_SPINCOUNT" not in out.stderr:
        pytest.skip("torch's OpenMP runtime is not GNU OpenMP here")
    assert "GOMP_SPINCOUNT = '0'" in out.stderr


def test_first_step_hook_writes_the_time_once(tmp_path, monkeypatch):
    stamp = tmp_path / "first_step"
    monkeypatch.setenv(runtime.FIRST_STEP_ENV, str(stamp))
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    runtime.report_first_step()
    before = time.time()
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    first = float(stamp.read_text())
    assert before <= first <= time.time()
    opt.step()  # the hook removed itself
    assert float(stamp.read_text()) == first


def test_first_step_hook_needs_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(runtime.FIRST_STEP_ENV, raising=False)
    runtime.report_first_step()
    model = torch.nn.Linear(2, 1)
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not list(tmp_path.iterdir())


EXIT_SCRIPT = """
import atexit, gc, os, sys
from lrlab.runtime import configure_process
configure_process()

class Cycle:
    def __del__(self):
        os.write(1, b"cycle collected at exit\\n")

a = Cycle(); a.me = a; del a  # garbage only a collection finds (none runs before exit)
gc.disable()
atexit.register(lambda: print("later handler ran, frozen:", gc.get_freeze_count() > 0))
"""


@pytest.mark.parametrize("configured", [True, False])
def test_exit_skips_the_last_collections_after_every_other_handler(configured):
    env = {**os.environ, runtime.DISABLE_ENV: "1" if configured else "0"}
    out = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout
    # The later-registered handler (W&B's, logging's) runs first, before anything is frozen.
    assert "later handler ran, frozen: False" in out
    assert ("cycle collected at exit" in out) is not configured
