"""notebooks/compare_optimizers.ipynb runs top to bottom on a tiny hand-made sweep."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "compare_optimizers.ipynb"

# (overrides, final-epoch val_acc per epoch); two groups of two seeds.
RUNS = [
    (["recipe=adam", "seed=0"], [0.5, 0.8]),
    (["recipe=adam", "seed=1"], [0.6, 1.0]),
    (["recipe=sgd_clr", "seed=0"], [0.4, 0.6]),
    (["recipe=sgd_clr", "seed=1"], [0.3, 0.5]),
]


def make_sweep(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    for num, (overrides, accs) in enumerate(RUNS):
        run = root / str(num)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
        rows = []
        for e, acc in enumerate(accs, start=1):
            rows.append({"type": "step", "step": 2 * e, "epoch": float(e), "train_loss": 1 / e, "lr": 0.01 * e, "momentum": 0.9})  # fmt: skip
            rows.append({"type": "epoch", "epoch": e, "step": 2 * e, "train_loss": 1 / e, "train_acc": acc, "val_loss": 1 / e, "val_acc": acc})  # fmt: skip
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        summary = {"status": "completed", "seed": num % 2, "wall_time_s": 1.0}
        (run / "summary.json").write_text(json.dumps(summary))
    return root


@pytest.mark.slow  # starts a Jupyter kernel
def test_notebook_executes_on_a_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    sweep = make_sweep(tmp_path / "sweep")
    # A kernelspec of its own, found first on JUPYTER_PATH: the kernel is this interpreter
    # (the project's venv), whatever `python3` kernel the machine has installed.
    spec = tmp_path / "jupyter" / "kernels" / "lrlab-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "lrlab", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("LRLAB_SWEEP_DIR", str(sweep))  # read by the notebook's parameter cell

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="lrlab-test",
        timeout=120,
        resources={"metadata": {"path": str(ROOT / "notebooks")}},  # run where it lives
    )
    client.execute()  # raises CellExecutionError on any failing cell

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    markdown = "\n".join(
        o.data["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})
    )
    assert f"4 runs in 2 groups from {sweep}" in text
    assert "| recipe=adam | 2 | 2 completed | 0.9000 ± 0.1414 |" in markdown
    assert "| recipe=sgd_clr | 2 | 2 completed | 0.5500 ± 0.0707 |" in markdown
    # the DataFrames are shown: groups, runs, and the per-epoch pivot of the epoch rows
    frames = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert len(frames) == 3
    assert "final_val_acc_mean" in frames[0] and "counted" in frames[1]
    assert "recipe=sgd_clr" in frames[2] and "epoch" in frames[2]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # curves, lr, per-seed dots
    assert not list(sweep.glob("*.png"))  # the notebook only reads the sweep
