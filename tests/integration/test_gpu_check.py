"""benchmarks/gpu/check.sh in its CPU dry run, so that the GPU check keeps working between the
times someone runs it on a GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_the_gpu_check_dry_run_passes_and_writes_its_report(tmp_path):
    out = tmp_path / "gpu.md"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_OUT": str(out)}
    p = subprocess.run(
        ["bash", "benchmarks/gpu/check.sh", "--dry-run"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    report = out.read_text()
    assert "DRY RUN on the CPU" in report
    for check in ("digits bf16-mixed", "digits 16-mixed", "torchrun 1 process (gloo)",
                  "img/s timm train.py", "img/s hand-written loop", "seed study estimate"):  # fmt: skip
        assert f"| {check} | yes |" in report, check


def test_missing_packages_without_a_wheel_folder_are_named(tmp_path):
    """A python without hydra: check.sh names what is missing and how to bring it, exit 2.
    The fake python answers check.sh's `-c "import X"` probes itself (no torch import per
    probe) and refuses any other command: check.sh must stop before it runs anything."""
    fake = tmp_path / "python"
    fake.write_text(
        "#!/bin/sh\ncase \"$1 $2\" in '-c import hydra'|'-c import omegaconf') exit 1;;\n"
        "'-c import '*) exit 0;; esac\necho \"fake python: unexpected $*\"; exit 3\n"
    )
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake)}
    p = subprocess.run(
        ["bash", "benchmarks/gpu/check.sh", "--dry-run"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2
    assert "missing hydra-core omegaconf; no wheel folder given" in p.stdout
    p = subprocess.run(
        ["bash", "benchmarks/gpu/check.sh", "--dry-run", str(tmp_path / "nowhere")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2 and "is not a directory" in p.stdout
