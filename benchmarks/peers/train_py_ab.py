"""`python train.py` (digits, the defaults) end to end, and start-up to the first optimizer
step, for two checkouts and the hand-written loop, as whole processes, interleaved.

    .venv/bin/python benchmarks/peers/train_py_ab.py /tmp/base . --repeats 5
    .venv/bin/python benchmarks/peers/train_py_ab.py /tmp/base . --repeats 5 --flowers ../shared/data/flowers

Per round, in this order: each checkout's `python train.py` (digits, 5 epochs: command to
exit, and command to the end of the first step through LRLAB_FIRST_STEP_FILE); with
`--flowers`, each checkout's `train.py data=flowers` start-up (one train and one validation
batch, no checkpoint) and the hand-written loop's (naive_loop.py, stopped after its first
step). Every checkout runs from its own src/ (PYTHONPATH) with this interpreter and its own
warm caches (one untimed run first), so only the code differs. Results:
benchmarks/results/train-py-ab.md and .json (medians, and the 1-min load before each process).
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FLOWERS_STARTUP = [
    "data=flowers",
    "trainer.epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.checkpoint=false",
]


def timed(cmd: list[str], env: dict, cwd: Path, stop_after_first_step: bool = False) -> dict:
    """Wall seconds from launch to the first step's end and to exit, and the load before."""
    first = cwd / "first_step"
    first.unlink(missing_ok=True)
    if not stop_after_first_step:  # lrlab: a fresh run dir (it refuses a completed one)
        cmd = [*cmd, f"hydra.run.dir=runs/{time.time_ns()}"]
    env = {**env, "LRLAB_FIRST_STEP_FILE": str(first)}
    load = os.getloadavg()[0]
    launched = time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True)
    step_at = None
    for line in proc.stdout:  # the peer prints `PEERS {"event": "first_step", "time": ...}`
        if line.startswith("PEERS ") and '"first_step"' in line:
            step_at = json.loads(line[6:])["time"]
            if stop_after_first_step:
                proc.terminate()
                break
    proc.wait()
    ended = time.time()
    if proc.returncode and not stop_after_first_step:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}")
    if step_at is None:
        step_at = float(first.read_text())
    return {"first_step_s": step_at - launched, "exit_s": ended - launched, "load": load}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path, help="a checkout (its src/ and train.py)")
    p.add_argument("after", type=Path)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--flowers", type=Path, help="the flowers folder: adds the start-up rows")
    p.add_argument("--tag", default="", help="results file suffix")
    args = p.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def variants(warm: bool) -> list[tuple[str, list[str], dict, Path, bool]]:
            out = []
            for name, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree / "src")}
                cwd = Path(tmp, name)  # paths.root_dir=. : each tree its own data/ caches
                cwd.mkdir(exist_ok=True)
                train = [sys.executable, str(tree / "train.py")]
                out.append((f"{name}: train.py (digits)", train, env, cwd, 0))
                if args.flowers:
                    flowers = [*train, *FLOWERS_STARTUP, f"data.root={args.flowers.resolve()}"]
                    out.append((f"{name}: train.py data=flowers", flowers, env, cwd, 0))
            if args.flowers and not warm:
                naive = [sys.executable, str(HERE / "naive_loop.py"), "--root"]
                naive += [str(args.flowers.resolve()), "--epochs", "1"]
                cwd = Path(tmp, "naive")
                cwd.mkdir(exist_ok=True)
                out.append(("hand-written loop (naive_loop.py)", naive, dict(os.environ), cwd, 1))
            return out

        for _name, cmd, env, cwd, stop in variants(warm=True):  # fill each tree's caches
            timed(cmd, env, cwd, bool(stop))
        for rep in range(args.repeats):
            for name, cmd, env, cwd, stop in variants(warm=False):
                r = timed(cmd, env, cwd, bool(stop))
                runs.setdefault(name, []).append(r)
                print(f"[{rep}] {name}: {json.dumps(r)}", flush=True)
    loads = [r["load"] for rs in runs.values() for r in rs]
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    lines = [
        "## `python train.py` end to end and start-up, two checkouts, interleaved",
        "",
        f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; before = {trees['before']}, "
        f"after = {trees['after']}; `python benchmarks/peers/train_py_ab.py "
        f"{' '.join(sys.argv[1:])}`",
        f"- {args.repeats} rounds; 1-min load before each process {min(loads):.1f} to "
        f"{max(loads):.1f} (2 cores); medians",
        "",
        "| process | command to end of first step, s | command to exit, s |",
        "|---|---|---|",
        *(f"| {n} | {m['first_step_s']:.2f} | {m['exit_s']:.2f} |" for n, m in med.items()),
    ]
    naive = med.get("hand-written loop (naive_loop.py)")
    if naive:
        for tree in trees:
            m = med[f"{tree}: train.py data=flowers"]
            lines.append(
                f"\n{tree}: flowers start-up {m['first_step_s'] - naive['first_step_s']:+.2f} s "
                "over the hand-written loop (medians)"
            )
    text = "\n".join(lines) + "\n"
    out = ROOT / "benchmarks" / "results" / f"train-py-ab{'-' + args.tag if args.tag else ''}"
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(runs, indent=1))
    print(text)


if __name__ == "__main__":
    main()
