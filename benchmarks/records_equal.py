"""Do two checkouts of lrlab train every built-in schedule to the same records?

Trains each config below with a reference git ref (default: main) and with this checkout, one
thread each, and compares their metrics.jsonl row by row (every key but the times): the
schedules' lr, momentum and other keys, and the losses and accuracies they lead to. The
reference is checked out with `git worktree add --detach` in a temporary folder and run with
its own src/ first on PYTHONPATH; the YAML options keep their names, so the same overrides
select the same schedule in both.

    .venv/bin/python benchmarks/records_equal.py                      # main vs this checkout
    .venv/bin/python benchmarks/records_equal.py --ref 7693ca2 --new HEAD --only onecycle,clr
    .venv/bin/python benchmarks/records_equal.py --flowers ../shared/data/flowers

Writes benchmarks/results/records_equal.{md,json}; exits 1 if any config's rows differ.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "trainer.num_threads=1",
    "trainer.progress_bar=false",
    "trainer.checkpoint=false",
    "trainer.log_every_n_steps=1",
    "logger=local",
]
DIGITS = ["data=digits", "trainer.epochs=3"]
# name -> overrides: every file in conf/scheduler/, and the keys lrlab adds to any of them
CONFIGS: dict[str, list[str]] = {
    "constant": ["scheduler=constant"],
    "step": ["scheduler=step", "scheduler.milestones=[1,2]"],
    "cosine": ["scheduler=cosine"],
    "plateau": ["scheduler=plateau", "scheduler.patience=0", "scheduler.threshold=0.5"],
    "clr": ["scheduler=clr", "optimizer=sgd", "scheduler.step_size=0.5"],
    "clr_momentum": [
        "scheduler=clr",
        "optimizer=sgd",
        "scheduler.cycle_momentum=true",
        "scheduler.mode=triangular2",
        "scheduler.step_size=0.5",
    ],
    "onecycle": ["scheduler=onecycle"],
    "onecycle_sgd_three_phase": [
        "scheduler=onecycle",
        "optimizer=sgd",
        "scheduler.three_phase=true",
    ],
    "sgdr": ["scheduler=sgdr", "scheduler.t_0=0.5"],
    "flat_cos": ["scheduler=flat_cos"],
    "phases": ["scheduler=phases"],
    "trapezoid": ["scheduler=trapezoid"],
    "fine_tune": [
        "scheduler=fine_tune",
        "model.fine_tune=true",
        "model.freeze=all_but_head",
        "trainer.epochs=5",
    ],
    "warmup_cosine": [
        "scheduler=cosine",
        "scheduler.warmup_epochs=1.5",
        "scheduler.warmup_start_factor=0.1",
    ],
    "weight_decay_rise": [
        "scheduler=onecycle",
        "optimizer=adamw",
        "scheduler/params=weight_decay_rise",
    ],
    "optimizer_switch": ["optimizer_switch=adam_to_sgd", "optimizer_switch.epoch=2"],
    "resizing_batch_sizes": [
        "scheduler=cosine",
        "resizing.stages=[{epochs:1,size:8,batch_size:32},{size:8}]",
    ],
}
TIMES = ("epoch_time_s", "time_s", "elapsed_s")


def rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.jsonl") as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMES} for line in f]


def train(repo: Path, overrides: list[str], run_dir: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "train.py", *COMMON, *overrides, f"hydra.run.dir={run_dir}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0:
        raise SystemExit(f"{repo}: train.py {' '.join(overrides)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="the reference git ref (default: main)")
    parser.add_argument(
        "--new", help="a git ref to compare instead of this working tree (e.g. HEAD: stable runs)"
    )
    parser.add_argument("--only", help="comma-separated config names (default: all)")
    parser.add_argument("--flowers", help="a flowers folder: adds one small flowers config")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "records_equal"))
    args = parser.parse_args(argv)
    configs = {k: [*DIGITS, *v] for k, v in CONFIGS.items()}
    if args.flowers:
        configs["flowers_onecycle"] = [
            "data=flowers",
            f"data.root={Path(args.flowers).resolve()}",
            "data.image_size=32",
            "trainer.epochs=2",
            "trainer.limit_train_batches=8",
            "trainer.limit_val_batches=4",
        ]
    if args.only:
        configs = {k: configs[k] for k in args.only.split(",")}
    ref_sha = subprocess.run(
        ["git", "rev-parse", args.ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    head = subprocess.run(
        ["git", "rev-parse", args.new or "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dirty = not args.new and bool(
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still remove the worktrees
    results = []
    with tempfile.TemporaryDirectory(prefix="records_equal_") as tmp:
        ref_repo, new_repo = Path(tmp) / "ref", Path(tmp) / "new" if args.new else ROOT
        for repo, sha in [(ref_repo, ref_sha)] + ([(new_repo, head)] if args.new else []):
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(repo), sha],
                cwd=ROOT,
                capture_output=True,
                check=True,
            )
        try:
            for name, overrides in configs.items():  # ref, then this checkout: interleaved
                t_ref = train(ref_repo, overrides, Path(tmp) / "runs" / "ref" / name)
                t_new = train(new_repo, overrides, Path(tmp) / "runs" / "new" / name)
                a = rows(Path(tmp) / "runs" / "ref" / name)
                b = rows(Path(tmp) / "runs" / "new" / name)
                first = next(
                    (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None
                )
                equal = a == b
                results.append(
                    {
                        "config": name,
                        "overrides": overrides,
                        "rows": len(a),
                        "equal": equal,
                        "first_difference": first,
                        "seconds_ref": round(t_ref, 1),
                        "seconds_new": round(t_new, 1),
                    }
                )
                print(
                    f"{name:28s} rows {len(a):4d}/{len(b):4d}  {'equal' if equal else 'DIFFER'}",
                    flush=True,
                )
        finally:
            for repo in {ref_repo, new_repo} - {ROOT}:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(repo)],
                    cwd=ROOT,
                    capture_output=True,
                )
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    meta = {
        "ref": args.ref,
        "ref_sha": ref_sha,
        "new_sha": head,
        "new_dirty": dirty,
        "common": COMMON,
        "load_after": load,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": results}, indent=1) + "\n")
    lines = [
        "# metrics.jsonl rows: reference vs this checkout",
        "",
        f"`python benchmarks/records_equal.py --ref {args.ref}"
        + (f" --new {args.new}" if args.new else "")
        + (" --flowers ..." if args.flowers else "")
        + "`: "
        f"ref {ref_sha[:10]} vs {head[:10]}{' (+ uncommitted changes)' if dirty else ''}; "
        f"every row's keys but the times compared; common overrides `{' '.join(COMMON)}`.",
        "",
        "| config | overrides | rows | identical |",
        "|---|---|---:|---|",
        *(
            f"| {r['config']} | `{' '.join(r['overrides'])}` | {r['rows']} | "
            f"{'yes' if r['equal'] else 'NO, from row ' + str(r['first_difference'])} |"
            for r in results
        ),
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md"))
    return 0 if all(r["equal"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
