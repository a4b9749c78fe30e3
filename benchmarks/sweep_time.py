"""The same sweep run one job after another (Hydra's basic launcher) and two jobs at a time
(`hydra/launcher=joblib hydra.launcher.n_jobs=2`), interleaved, as wall-time ratios.

    python benchmarks/sweep_time.py digits --repeats 3     # 4 default runs of 3 epochs
    python benchmarks/sweep_time.py flowers --repeats 2    # 2 flowers runs of 1 epoch

Each sweep is `python train.py -m ...` as a user types it. Besides the wall and CPU time of the
whole sweep, each row splits it: "start" is the time from the command to the first job's first
step (imports, Hydra, worker processes, data and model set-up), "jobs" the jobs' own wall time
from their summary.json (set-up included), and the load average while it ran (the machine is
shared: the variants run round-robin so that other load hits them alike).
Writes benchmarks/results/sweep-<suite>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOWERS = ROOT.parent / "shared" / "data" / "flowers"
JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]


def suites(flowers: Path) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    return {
        "digits": (
            ["seed=0,1,2,3", "trainer.epochs=3"],
            {
                "sequential (basic launcher, 2 threads)": [],
                "sequential, 1 thread": ["trainer.num_threads=1"],
                "joblib n_jobs=2 (1 thread per job)": JOBLIB,
                # slow (minutes): only with --only oversubscribed
                "joblib n_jobs=2, 2 threads per job (oversubscribed)": [
                    *JOBLIB,
                    "trainer.num_threads=2",
                ],
            },
        ),
        "flowers": (
            ["data=flowers", f"data.root={flowers}", "seed=0,1", "trainer.epochs=1"],
            {
                "sequential (basic launcher, 2 threads)": [],
                "sequential, 1 thread": ["trainer.num_threads=1"],
                "joblib n_jobs=2 (1 thread per job)": JOBLIB,
            },
        ),
    }


def first_step_time(sweep: Path) -> float | None:
    """When the earliest job logged that it starts training (train.log's timestamp)."""
    stamps = []
    for log in sweep.glob("*/train.log"):
        m = re.search(
            r"^\[([\d\- :,]+)\]\[lrlab\.tasks\.train\]\[INFO\] - training", log.read_text(), re.M
        )
        if m:
            stamps.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return min(stamps) if stamps else None


def run_sweep(base: list[str], extra: list[str], sweep: Path, data_dir: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *base, *extra]
    cmd += [f"hydra.sweep.dir={sweep}", f"paths.data_dir={data_dir}", "trainer.progress_bar=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PROJECT_ROOT": str(sweep.parent)}
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    summaries = [json.loads(p.read_text()) for p in sweep.glob("*/summary.json")]
    first = first_step_time(sweep)
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "start": None if first is None else first - start,
        "jobs_wall": sum(s["wall_time_s"] for s in summaries),
        "val_acc": [s["final_val_acc"] for s in summaries],
        "load": [load_before, os.getloadavg()[0]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", choices=["digits", "flowers"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flowers-root", type=Path, default=FLOWERS)
    parser.add_argument(
        "--only", default=None, help="regex: the variants to run besides the sequential ones"
    )
    args = parser.parse_args()
    base, variants = suites(args.flowers_root)[args.suite]
    only = args.only or "^(?!.*oversubscribed)"
    variants = {k: v for k, v in variants.items() if re.search(only, k) or k.startswith("seq")}
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for k, (name, extra) in enumerate(variants.items()):
                r = run_sweep(base, extra, Path(tmp, f"{rep}-{k}", "sweep"), ROOT / "data")
                runs[name].append(r)
                print(f"[{rep + 1}/{args.repeats}] {name}: {json.dumps(r)}", flush=True)
    names = list(variants)
    reference = runs[names[0]]
    loads = [x for rs in runs.values() for r in rs for x in r["load"]]
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores; "
        f"load average (1 min) {min(loads):.1f} to {max(loads):.1f} during the sweeps",
        f"- command: `python benchmarks/sweep_time.py {' '.join(sys.argv[1:])}`; each sweep: "
        f"`python train.py -m {' '.join(base)}` plus the variant's overrides",
        f"- medians of {args.repeats} round-robin repeats; speed-up = the sequential sweep's "
        "wall time / this variant's, per repeat (then the median and the range)",
        "",
        "| variant | sweep wall s | sweep cpu s | start s | jobs' own wall s (sum) | "
        "speed-up vs sequential |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        rs = runs[name]
        ratios = [ref["wall"] / r["wall"] for ref, r in zip(reference, rs, strict=True)]
        med = {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu", "jobs_wall")}
        start = statistics.median(r["start"] for r in rs if r["start"] is not None)
        lines.append(
            f"| {name} | {med['wall']:.1f} | {med['cpu']:.1f} | {start:.1f} | "
            f"{med['jobs_wall']:.1f} | {statistics.median(ratios):.2f}x "
            f"({min(ratios):.2f} to {max(ratios):.2f}) |"
        )
    text = f"## sweep: {args.suite}\n\n" + "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"sweep-{args.suite}.md").write_text(text)
    (out / f"sweep-{args.suite}.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
