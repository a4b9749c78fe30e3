"""Process-level settings for `python train.py`, as whole processes, interleaved: OpenMP's wait
policy and thread count (issue 9 item 9), and the memory allocator (glibc thresholds, jemalloc,
tcmalloc, torch's THP allocations).

    python benchmarks/peers/process_settings.py threads-digits --repeats 3
    python benchmarks/peers/process_settings.py threads-digits --repeats 3 --busy 1
    python benchmarks/peers/process_settings.py malloc --repeats 3

Every variant is `train.py` with environment variables and overrides; `LRLAB_CONFIGURE_PROCESS=0`
turns lrlab.runtime off, so the other variants measure one setting each on top of torch's
defaults. Per process: the later epochs' mean time, wall, user and system CPU, minor page
faults, peak RSS, and the CPU other processes used meanwhile. Results:
benchmarks/results/process-<suite>[-busyN].md and .json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import FLOWERS, ROOT, Variant, run_once, steady_epoch

OFF = {"LRLAB_CONFIGURE_PROCESS": "0"}
PASSIVE = {**OFF, "OMP_WAIT_POLICY": "PASSIVE"}
MALLOPT_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
# jemalloc keeping its freed pages. (Intel's PyTorch tuning guide adds oversize_threshold:1,
# which sends every large tensor to an arena that returns its pages at once: 40k page faults
# per flowers step instead of 0, measured with this machine's jemalloc 5.3.)
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
LIBS = Path(
    "/usr/lib/x86_64-linux-gnu"
)  # Debian: apt-get install libjemalloc2 libtcmalloc-minimal4


def suites(flowers: Path) -> dict[str, tuple[list[str], list[tuple[str, dict, list[str]]]]]:
    train = [str(ROOT / "train.py")]
    flowers_args = [*train, "data=flowers", f"data.root={flowers}", "trainer.checkpoint=false"]
    threads = [
        ("torch defaults (OpenMP spins; main before lrlab.runtime)", OFF, []),
        ("OMP_WAIT_POLICY=PASSIVE", PASSIVE, []),
        ("GOMP_SPINCOUNT=10000", {**OFF, "GOMP_SPINCOUNT": "10000"}, []),
        ("1 thread (trainer.num_threads=1)", OFF, ["trainer.num_threads=1"]),
        # the passive policy's own cost: this row against lrlab.runtime (both without page faults)
        ("glibc thresholds only (OpenMP spins)", {**OFF, **MALLOPT_ENV}, []),
        (
            "thresholds + GOMP_SPINCOUNT=10000",
            {**OFF, **MALLOPT_ENV, "GOMP_SPINCOUNT": "10000"},
            [],
        ),
        (
            "thresholds + GOMP_SPINCOUNT=100000",
            {**OFF, **MALLOPT_ENV, "GOMP_SPINCOUNT": "100000"},
            [],
        ),
        ("lrlab.runtime (passive + mallopt)", {}, []),
    ]
    return {
        "threads-digits": (
            [*train, "data=digits", "trainer.epochs=6", "trainer.checkpoint=false"],
            threads,
        ),
        "threads-flowers": (
            [*flowers_args, "trainer.epochs=3", "trainer.limit_train_batches=40"],
            threads,
        ),
        "malloc": (
            [*flowers_args, "trainer.epochs=2", "trainer.limit_train_batches=60"],
            [
                ("glibc defaults (OMP passive in all rows)", PASSIVE, []),
                ("MALLOC_MMAP_/TRIM_THRESHOLD_ env", {**PASSIVE, **MALLOPT_ENV}, []),
                ("lrlab.runtime (mallopt at start-up)", {}, []),
                (
                    "jemalloc (LD_PRELOAD)",
                    {**PASSIVE, "LD_PRELOAD": str(LIBS / "libjemalloc.so.2")},
                    [],
                ),
                (
                    "jemalloc, MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1",
                    {
                        **PASSIVE,
                        "LD_PRELOAD": str(LIBS / "libjemalloc.so.2"),
                        "MALLOC_CONF": JEMALLOC_CONF,
                    },
                    [],
                ),
                (
                    "tcmalloc (LD_PRELOAD)",
                    {**PASSIVE, "LD_PRELOAD": str(LIBS / "libtcmalloc_minimal.so.4")},
                    [],
                ),
                (
                    "THP_MEM_ALLOC_ENABLE=1 (torch's huge pages)",
                    {**PASSIVE, "THP_MEM_ALLOC_ENABLE": "1"},
                    [],
                ),
            ],
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("suite", choices=["threads-digits", "threads-flowers", "malloc"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--busy", type=int, default=0, help="busy-loop processes meanwhile")
    p.add_argument("--flowers-root", type=Path, default=FLOWERS)
    p.add_argument("--only", default=None, help="regex: run only the matching variants")
    p.add_argument("--tag", default="", help="results file suffix")
    args = p.parse_args()
    base, rows = suites(args.flowers_root.resolve())[args.suite]
    rows = [r for r in rows if not args.only or re.search(args.only, r[0])]
    todo = [Variant(name, "lrlab", [*base, *extra], env) for name, env, extra in rows]
    runs: dict[str, list[dict]] = {v.name: [] for v in todo}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            run_once(todo[0], work, work / "data")  # warm-up: stats cache, page cache
            for rep in range(args.repeats):
                for v in todo:
                    r = run_once(v, work, work / "data")
                    runs[v.name].append(r)
                    print(f"[{rep + 1}/{args.repeats}] {json.dumps(r)}", flush=True)
    finally:
        for b in busy:
            b.kill()

    def med(rs: list[dict], f) -> float:
        return statistics.median(f(r) for r in rs)

    others = [r["others_cores"] for rs in runs.values() for r in rs]
    loads = [r["load_1min"] for rs in runs.values() for r in rs]
    first = todo[0].name
    lines = [
        f"## process settings: {args.suite}"
        + (f", {args.busy} busy process(es)" if args.busy else ""),
        "",
        f"- date: {started}; `python benchmarks/peers/process_settings.py {' '.join(sys.argv[1:])}`",
        f"- base command: `python {' '.join(Path(a).name if a.endswith('.py') else a for a in base)}`",
        f"- {args.repeats} round-robin repeats; medians; load: 1-min average {min(loads):.1f} to "
        f"{max(loads):.1f} at the runs' starts, other processes used {min(others):.2f} to "
        f"{max(others):.2f} cores during the runs"
        + (f" (including the {args.busy} busy loop(s))" if args.busy else ""),
        "",
        "| variant | later epochs s | epoch time / row 1 (paired) | process wall s | user cpu s | sys cpu s "
        "| minor faults (k) | max RSS MB | other load (cores) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in todo:
        rs = runs[v.name]
        ratio = statistics.median(
            steady_epoch(a) / steady_epoch(b) for a, b in zip(rs, runs[first], strict=True)
        )
        lines.append(
            f"| {v.name} | {med(rs, steady_epoch):.3f} | {ratio:.2f}x | {med(rs, lambda r: r['wall_s']):.1f} "
            f"| {med(rs, lambda r: r['user_s']):.1f} | {med(rs, lambda r: r['sys_s']):.2f} "
            f"| {med(rs, lambda r: r['minor_faults']) / 1000:.0f} "
            f"| {med(rs, lambda r: r['max_rss_mb']):.0f} | {med(rs, lambda r: r['others_cores']):.2f} |"
        )
    text = "\n".join(lines) + "\n"
    stem = f"process-{args.suite}" + (f"-busy{args.busy}" if args.busy else "")
    stem += f"-{args.tag}" if args.tag else ""
    out = ROOT / "benchmarks" / "results"
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps({"args": sys.argv[1:], "runs": runs}, indent=1))
    print(text, flush=True)


if __name__ == "__main__":
    main()
