"""Hand-made run dirs with known numbers for the comparison tests (lrlab.analysis)."""

from __future__ import annotations

import json
import math
from pathlib import Path

# (overrides, status, val_acc per epoch, wall time); job numbers are the list positions.
JOBS = [
    (["recipe=adam", "seed=0"], "completed", [0.5, 0.7, 0.8], 10.0),
    (["recipe=adam", "seed=1"], "completed", [0.6, 0.8, 0.9], 12.0),
    (["recipe=adam", "seed=2"], "completed", [0.7, 0.9, 1.0], 14.0),
    (["recipe=sgd_clr", "seed=0"], "completed", [0.4, 0.6, 0.5], 20.0),
    (["recipe=sgd_clr", "seed=1"], "completed", [0.5, 0.7, 0.7], 22.0),
    (["recipe=sgd_clr", "seed=2"], "diverged", [0.3], 5.0),
    (["recipe=rmsprop", "seed=0"], "failed", [], 1.0),
    (["recipe=rmsprop", "seed=1"], None, [0.2, 0.25], None),  # hard crash: no summary.json
]


LR0 = {"recipe=adam": 1e-3, "recipe=sgd_clr": 1e-2}


def write_run(
    run_dir: Path,
    overrides: list[str],
    status: str | None,
    val_acc: list[float],
    wall: float | None,
    steps_per_epoch: int = 4,
) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    lr0 = next((v for k, v in LR0.items() if k in overrides), 1e-4)
    rows = []
    for e, acc in enumerate(val_acc, start=1):
        for s in range(1, steps_per_epoch + 1):
            step = (e - 1) * steps_per_epoch + s
            lr = lr0 * (1 + s / steps_per_epoch)
            rows.append(
                {"type": "step", "step": step, "epoch": e - 1 + s / steps_per_epoch,
                 "train_loss": 1.0 / step, "lr": lr, "lr_groups": [lr], "momentum": 0.9}
            )  # fmt: skip
        diverged_now = status == "diverged" and e == len(val_acc)
        rows.append(
            {"type": "epoch", "epoch": e, "step": e * steps_per_epoch,
             "train_loss": math.nan if diverged_now else 1.0 / e, "train_acc": acc + 0.05,
             "val_loss": 2.0 / e, "val_acc": acc, "epoch_time_s": 1.0, "lr": lr0}
        )  # fmt: skip
    # json.dumps writes NaN as the trainer would for a diverged loss
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if status is None:
        return
    best = max(val_acc) if val_acc else None
    summary = {
        "status": status,
        "error": "RuntimeError: boom" if status == "failed" else None,
        "final_val_acc": val_acc[-1] if val_acc else None,
        "best_val_acc": best,
        "best_epoch": val_acc.index(best) + 1 if val_acc else None,
        "epochs_completed": len(val_acc),
        "steps": len(val_acc) * steps_per_epoch,
        "wall_time_s": wall,
        "seed": int(overrides[-1].split("=")[1]),
        "overrides": overrides,
        "versions": {},
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))


def make_sweep(
    root: Path, jobs: list = JOBS, prefix: tuple[str, ...] = ("experiment=cmp",)
) -> Path:
    """A multirun dir like Hydra's: multirun.yaml plus numbered job dirs (10 sorts after 9)."""
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    for num, (overrides, status, accs, wall) in enumerate(jobs):
        write_run(root / str(num), [*prefix, *overrides], status, accs, wall)
    return root
