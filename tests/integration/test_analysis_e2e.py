"""End to end: The comparison (lrlab.analysis) on hand-made run dirs with known numbers (see `JOBS`)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.analysis_runs import make_sweep

ROOT = Path(__file__).resolve().parents[2]

RECIPES = {
    "sgd_clr": ("torch.optim.SGD", "clr"),
    "adam": ("torch.optim.Adam", "constant"),
    "adamax": ("torch.optim.Adamax", "constant"),
    "adagrad": ("torch.optim.Adagrad", "constant"),
    "adadelta": ("torch.optim.Adadelta", "constant"),
    "rmsprop": ("torch.optim.RMSprop", "constant"),
    "adamw": ("torch.optim.AdamW", "constant"),
}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return make_sweep(tmp_path / "multiruns" / "2026-01-01" / "12-00-00")


@pytest.mark.slow  # a real 4-job sweep (digits, a few batches each), then the script
def test_tiny_real_multirun_then_report(tmp_path: Path) -> None:
    from tests.helpers import make_image_folder
    from tests.helpers.cli import cli_in_process

    sweep = tmp_path / "sweep"
    photos = make_image_folder(tmp_path / "photos", {"a": 12, "b": 12}, size=16)
    proc = cli_in_process(
        "train.py", "-m", "experiment=optimizer_comparison", f"data.root={photos}",
        "data.image_size=16", "debug=fast", "recipe=sgd_clr,adam", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), str(sweep)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    finals = {"recipe=sgd_clr": [], "recipe=adam": []}
    for job in range(4):
        summary = json.loads((sweep / str(job) / "summary.json").read_text())
        finals[summary["overrides"][0]].append(summary["final_val_acc"])
    for label, values in finals.items():
        cell = f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"
        assert f"| {label} | 2 | 2 completed | {cell} |" in proc.stdout
    assert (sweep / "report.md").read_text().count("| completed |") == 4
    plt = pytest.importorskip("matplotlib.pyplot")
    for name in ("curves.png", "lr.png"):
        assert plt.imread(sweep / name).shape[1] > 400
