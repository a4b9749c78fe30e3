"""How close a 2-process data parallel run (torchrun, gloo on CPU) comes to one process with
the same global batch, and how much of the gap is batch norm's per-process statistics.

    python benchmarks/ddp_agreement.py --seeds 0 1 2 --epochs 3

Per seed, three runs of the default digits config (global batch 64, 1 torch thread each):
  ddp      torchrun --nproc_per_node=2, data.batch_size=32 (each process normalises over 32)
  single   one process, data.batch_size=64
  accum    one process, data.batch_size=32 trainer.accumulate_grad_batches=2: the single run's
           data order with ddp's batch-norm batches of 32, so single vs accum is batch norm alone
Writes benchmarks/results/ddp_agreement.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["trainer.progress_bar=false", "trainer.checkpoint=false", "trainer.num_threads=1"]
VARIANTS = {
    "ddp": (
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"],
        ["data.batch_size=32"],
    ),
    "single": ([], ["data.batch_size=64"]),
    "accum": ([], ["data.batch_size=32", "trainer.accumulate_grad_batches=2"]),
}


def run(variant: str, seed: int, epochs: int, out: Path) -> dict:
    launcher, overrides = VARIANTS[variant]
    cmd = [sys.executable, *launcher, str(ROOT / "train.py"), *COMMON, *overrides]
    cmd += [f"seed={seed}", f"trainer.epochs={epochs}", f"hydra.run.dir={out}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PROJECT_ROOT": str(out.parent)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)}:\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if r["type"] == "epoch"][-1]
    return {k: last[k] for k in ("train_loss", "val_loss", "val_acc")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[int, dict]] = {v: {} for v in VARIANTS}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for variant in VARIANTS:
                loads.append(os.getloadavg()[0])
                out = Path(tmp, f"{variant}-{seed}")
                results[variant][seed] = run(variant, seed, args.epochs, out)
                print(variant, seed, results[variant][seed], flush=True)

    def gap(a: str, b: str, key: str) -> tuple[float, float]:
        d = [abs(results[a][s][key] - results[b][s][key]) for s in args.seeds]
        return statistics.mean(d), max(d)

    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
        f"{min(loads):.1f} to {max(loads):.1f}; command: `python benchmarks/ddp_agreement.py "
        f"{' '.join(sys.argv[1:])}`",
        "",
        "| seed | " + " | ".join(f"{v} val_acc / val_loss" for v in VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
    ]
    for s in args.seeds:
        cells = [
            f"{results[v][s]['val_acc']:.4f} / {results[v][s]['val_loss']:.4f}" for v in VARIANTS
        ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "| difference (mean / max over seeds) | val_acc | val_loss |", "|---|---|---|"]
    for a, b, what in [
        ("ddp", "single", "ddp vs single (what a user sees)"),
        ("accum", "single", "accum vs single (batch norm over 32 instead of 64 alone)"),
        ("ddp", "accum", "ddp vs accum (data order and sharding)"),
    ]:
        acc, loss = gap(a, b, "val_acc"), gap(a, b, "val_loss")
        lines.append(f"| {what} | {acc[0]:.4f} / {acc[1]:.4f} | {loss[0]:.4f} / {loss[1]:.4f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ddp_agreement.md").write_text(text)
    (out / "ddp_agreement.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
