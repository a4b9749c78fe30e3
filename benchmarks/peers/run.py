"""lrlab's `train.py` against what users would otherwise run, as whole processes, interleaved.

    python benchmarks/peers/run.py --epochs 3 --repeats 3
    python benchmarks/peers/run.py --epochs 2 --repeats 3 --busy 1 --only "lrlab|naive"

Variants (A B C D E, A B C D E, ...): lrlab's `python train.py data=flowers` with its defaults,
the same with `LRLAB_CONFIGURE_PROCESS=0` (lrlab without src/lrlab/runtime.py's process
settings, as on main before it), the hand-written loop (naive_loop.py), the same loop with
lrlab's tricks (`--tricks`: channels_last + decoded image cache), and fastai's fit_one_cycle
(fastai_loop.py; skipped when `--fastai-python` has no fastai).

Per process: per-epoch times (train + validation: lrlab's metrics.jsonl `epoch_time_s`, the
peers' own JSON lines), whole wall time, start-up (command to the end of the first optimizer
step: lrlab reports it through LRLAB_FIRST_STEP_FILE, see lrlab.runtime.report_first_step),
user and system CPU seconds and peak RSS (wait4: the process and its DataLoader workers), and
the CPU that everything else on the machine used meanwhile (/proc/stat minus this process):
the load the run competed with. Results: benchmarks/results/peers[-TAG].md and .json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from records import parse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FLOWERS = ROOT.parent / "shared" / "data" / "flowers"
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Variant:
    name: str
    kind: str  # "lrlab" (train.py) or "peer" (a script printing records.emit lines)
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable


def variants(args) -> list[Variant]:
    root, n = str(args.flowers_root), str(args.epochs)
    lrlab = [str(ROOT / "train.py"), "data=flowers", f"data.root={root}", f"trainer.epochs={n}"]
    peer = ["--root", root, "--epochs", n]
    out = [
        Variant("lrlab train.py (defaults)", "lrlab", lrlab),
        Variant(
            "lrlab train.py, no runtime settings", "lrlab", lrlab, {"LRLAB_CONFIGURE_PROCESS": "0"}
        ),
        Variant("hand-written loop (naive)", "peer", [str(HERE / "naive_loop.py"), *peer]),
        Variant(
            "hand-written loop + lrlab's tricks",
            "peer",
            [str(HERE / "naive_loop.py"), *peer, "--tricks"],
        ),
    ]
    for workers in args.fastai_workers if args.fastai_python else []:
        fastai = [str(HERE / "fastai_loop.py"), *peer]
        name = "fastai fit_one_cycle"
        if workers != "default":
            fastai += ["--workers", workers]
            name += f", {workers} workers"
        out.append(Variant(name, "peer", fastai, python=args.fastai_python))
    for v in out:
        v.env.update(args.env)
    return [v for v in out if not args.only or re.search(args.only, v.name)]


def busy_jiffies() -> int:
    """Non-idle CPU time of the whole machine so far (all cores), in clock ticks."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return user + nice + system + irq + softirq + steal


def run_once(v: Variant, work: Path, data_dir: Path) -> dict:
    run_dir = work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    first_step_file = work / "first_step"
    first_step_file.unlink(missing_ok=True)
    cmd = [v.python, *v.args]
    if v.kind == "lrlab":
        cmd += [f"hydra.run.dir={run_dir}", f"paths.data_dir={data_dir}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PROJECT_ROOT": str(work), **v.env}
    env["LRLAB_FIRST_STEP_FILE"] = str(first_step_file)
    load = os.getloadavg()[0]
    jiffies = busy_jiffies()
    launched = time.time()
    out_file, err_file = work / "stdout", work / "stderr"
    with out_file.open("w") as out, err_file.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=err)
        # wait4, not proc.wait(): the CPU time and peak RSS of this process and its workers
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    stdout, stderr = out_file.read_text(), err_file.read_text()
    wall = time.time() - launched
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{stderr[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    others = (busy_jiffies() - jiffies) / TICK - cpu
    if v.kind == "lrlab":
        rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
        epochs = [r for r in rows if r["type"] == "epoch"]
        first_step = float(first_step_file.read_text())
    else:
        records = parse(stdout)
        epochs = [r for r in records if r["event"] == "epoch"]
        first_step = next(r["time"] for r in records if r["event"] == "first_step")
    return {
        "variant": v.name,
        "epoch_time_s": [r["epoch_time_s"] for r in epochs],
        "val_acc": [r["val_acc"] for r in epochs],
        "wall_s": wall,
        "startup_s": first_step - launched,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "minor_faults": usage.ru_minflt,
        "others_cores": max(0.0, others) / wall,  # CPU the rest of the machine used meanwhile
        "load_1min": load,
    }


def steady_epoch(run: dict) -> float:
    """Mean epoch time after the first (the first includes one-off warm-up costs)."""
    times = run["epoch_time_s"]
    return statistics.mean(times[1:] if len(times) > 1 else times)


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    def med(rs: list[dict], f) -> float:
        return statistics.median(f(r) for r in rs)

    return {
        name: {
            "n": len(rs),
            "epoch_1_s": med(rs, lambda r: r["epoch_time_s"][0]),
            "epoch_steady_s": med(rs, steady_epoch),
            "wall_s": med(rs, lambda r: r["wall_s"]),
            "startup_s": med(rs, lambda r: r["startup_s"]),
            "user_s": med(rs, lambda r: r["user_s"]),
            "sys_s": med(rs, lambda r: r["sys_s"]),
            "max_rss_mb": med(rs, lambda r: r["max_rss_mb"]),
            "final_val_acc": med(rs, lambda r: r["val_acc"][-1]),
            "others_cores": med(rs, lambda r: r["others_cores"]),
        }
        for name, rs in runs.items()
        if rs
    }


def paired(runs: dict[str, list[dict]], a: str, b: str, f) -> float | None:
    """Median over rounds of f(a's run) / f(b's run): each round's runs ran back to back."""
    if not runs.get(a) or not runs.get(b):
        return None
    return statistics.median(f(x) / f(y) for x, y in zip(runs[a], runs[b], strict=False))


def targets(runs: dict[str, list[dict]]) -> list[tuple[str, str, str]]:
    """(what, measured, target) for the issue's three targets, on both lrlab variants."""
    names = [v for v in runs if v.startswith("lrlab")]
    naive, tricks, fastai = (
        "hand-written loop (naive)",
        "hand-written loop + lrlab's tricks",
        "fastai fit_one_cycle",
    )
    out = []

    def fmt(x: float | None, unit: str = "x") -> str:
        return "n/a" if x is None else f"{x:.2f}{unit}"

    for lr in names:
        # speed = 1 / time: the tricks loop's epoch time over lrlab's
        out.append(
            (
                f"{lr}: speed vs the loop with the same tricks (steady epoch)",
                fmt(paired(runs, tricks, lr, steady_epoch)),
                ">= 0.98x",
            )
        )
        for peer in (naive, fastai):
            out.append(
                (
                    f"{lr}: epoch time / {peer} (steady epoch)",
                    fmt(paired(runs, lr, peer, steady_epoch)),
                    "<= 0.80x",
                )
            )
            out.append(
                (
                    f"{lr}: whole-process wall / {peer}",
                    fmt(paired(runs, lr, peer, lambda r: r["wall_s"])),
                    "(context)",
                )
            )
        if runs.get(naive):
            diffs = [
                x["startup_s"] - y["startup_s"] for x, y in zip(runs[lr], runs[naive], strict=False)
            ]
            out.append(
                (
                    f"{lr}: start-up minus the naive loop's",
                    f"{statistics.median(diffs):+.2f} s",
                    "<= +1.00 s",
                )
            )
    return out


def markdown(summary: dict[str, dict], target_rows, header: str) -> str:
    lines = [
        header,
        "| variant | epoch 1 s | later epochs s | process wall s | start-up to 1st step s "
        "| user cpu s | sys cpu s | max RSS MB | final val acc | other load (cores) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        lines.append(
            f"| {name} | {s['epoch_1_s']:.2f} | {s['epoch_steady_s']:.2f} | {s['wall_s']:.1f} "
            f"| {s['startup_s']:.2f} | {s['user_s']:.1f} | {s['sys_s']:.1f} "
            f"| {s['max_rss_mb']:.0f} | {s['final_val_acc']:.3f} | {s['others_cores']:.2f} |"
        )
    lines += ["", "| target | measured (median of per-round ratios) | target |", "|---|---|---|"]
    lines += [f"| {what} | {got} | {want} |" for what, got, want in target_rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--flowers-root", type=Path, default=FLOWERS)
    p.add_argument(
        "--fastai-python",
        default=sys.executable if importlib.util.find_spec("fastai") else None,
        help="a python with fastai (pip install -e '.[bench]'); default: this one if it has it",
    )
    p.add_argument(
        "--fastai-workers",
        nargs="+",
        default=["default"],
        help="one fastai variant per value: 'default' (fastai's: min(16, cores)) or a number",
    )
    p.add_argument("--only", default=None, help="regex: run only the matching variants")
    p.add_argument("--busy", type=int, default=0, help="busy-loop processes meanwhile")
    p.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for every variant")
    p.add_argument("--tag", default="", help="results file suffix: peers-TAG.md")
    args = p.parse_args()
    args.flowers_root = args.flowers_root.resolve()
    args.env = dict(kv.split("=", 1) for kv in args.env)
    if not args.flowers_root.is_dir():
        sys.exit(f"error: --flowers-root {args.flowers_root} is not a directory")
    todo = variants(args)
    if not args.fastai_python:
        print("fastai not installed here (pip install -e '.[bench]'): skipping it", flush=True)

    runs: dict[str, list[dict]] = {v.name: [] for v in todo}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    uptimes = [Path("/proc/loadavg").read_text().split()[:3]]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work, data_dir = Path(tmp), Path(tmp) / "data"
            # Warm-up: the channel stats cache (as in any run after a user's first), the page
            # cache of the JPEGs and of the libraries' files.
            warm = [sys.executable, str(ROOT / "train.py"), "debug=fast", "data=flowers"]
            warm += [f"data.root={args.flowers_root}", f"hydra.run.dir={work / 'warm'}"]
            warm += [f"paths.data_dir={data_dir}"]
            subprocess.run(warm, cwd=work, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                           check=True, capture_output=True)  # fmt: skip
            if args.fastai_python:
                subprocess.run([args.fastai_python, "-c", "import fastai.vision.all"], check=True)
            for rep in range(args.repeats):
                for v in todo:
                    r = run_once(v, work, data_dir)
                    runs[v.name].append(r)
                    print(f"[{rep + 1}/{args.repeats}] {json.dumps(r)}", flush=True)
    finally:
        for b in busy:
            b.kill()
    uptimes.append(Path("/proc/loadavg").read_text().split()[:3])

    summary = summarise(runs)
    target_rows = targets(runs)
    loads = [r["load_1min"] for rs in runs.values() for r in rs]
    others = [r["others_cores"] for rs in runs.values() for r in rs]
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), "?",
    )  # fmt: skip
    header = (
        f"## peers{'-' + args.tag if args.tag else ''}\n\n"
        f"- date: {started}; machine: {os.cpu_count()} CPU cores ({cpu}), "
        f"python {platform.python_version()}\n"
        f"- command: `python benchmarks/peers/run.py {' '.join(sys.argv[1:])}`\n"
        f"- {args.repeats} round-robin repeats of {len(todo)} whole processes, "
        f"{args.epochs} epochs each; medians\n"
        f"- load: 1-min load average {min(loads):.1f} to {max(loads):.1f} at the runs' starts "
        f"(uptime before/after: {' '.join(uptimes[0])} / {' '.join(uptimes[-1])}); other "
        f"processes used {min(others):.2f} to {max(others):.2f} cores during the runs"
        + (f"; {args.busy} busy-loop process(es) ran meanwhile" if args.busy else "")
        + "\n"
        + (f"- environment for every variant: {args.env}\n" if args.env else "")
        + "\n"
    )
    text = markdown(summary, target_rows, header)
    stem = "peers" + (f"-{args.tag}" if args.tag else "")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(text)
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
               "targets": target_rows, "runs": runs}  # fmt: skip
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=1))
    print(text, flush=True)


if __name__ == "__main__":
    main()
