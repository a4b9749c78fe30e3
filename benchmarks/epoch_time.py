"""Epoch time of lrlab's real data pipeline and train step, one table row per configuration.

    .venv/bin/python benchmarks/epoch_time.py flowers --repeats 3
    .venv/bin/python benchmarks/epoch_time.py flowers-data digits startup --repeats 3

Suites: `flowers` (train epoch + validation with SimpleCNN, as `python train.py data=flowers`),
`flowers-data` (the loaders alone, no model), `digits`, `train.py` (the real entry point on
flowers: epoch_time_s from metrics.jsonl), `startup` (`python train.py debug=fast` wall time
and which heavy modules get imported). Every variant of a suite runs `--repeats` times
round-robin (A B C A B C ...) so load from other processes hits all variants alike; the tables
give medians. CPU seconds are this process plus its DataLoader workers (from /proc), so a
wall-time gain bought with more cores shows up as unchanged or higher CPU time. `--busy N`
runs N busy-loop processes meanwhile: a reproducible stand-in for a shared machine.
Results go to benchmarks/results/<suite>[-busyN].md (and .json with every repeat).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
FLOWERS = ROOT.parent / "shared" / "data" / "flowers"
HEAVY = ("wandb", "matplotlib", "timm", "sklearn", "scipy", "pandas", "torchvision", "tqdm")

import torch  # noqa: E402  (after the path setup, like the tests' conftest)

DEFAULT_THREADS = torch.get_num_threads()
BUSY_PIDS: set[str] = set()  # --busy processes: load, not part of any measurement
LOADS: list[float] = []  # 1-minute load average at every measurement


@dataclass
class Variant:
    name: str
    overrides: list[str] = field(default_factory=list)
    threads: int | None = None  # torch.set_num_threads; None: torch's default
    channels_last: bool = False
    model: bool = True  # False: iterate the loaders only
    env: dict[str, str] = field(default_factory=dict)  # for the train.py suite


def suites(flowers_root: Path) -> dict[str, tuple[list[str], list[Variant]]]:
    flowers = ["data=flowers", f"data.root={flowers_root}"]
    off, w2 = "data.cache_images=false", "trainer.num_workers=2"
    return {
        "flowers": (
            flowers,
            [
                Variant("decode every epoch (before)", [off]),
                Variant("cache", []),
                Variant("decode every epoch, 2 workers", [off, w2]),
                Variant("cache, 2 workers", [w2]),
                Variant("cache, 1 thread", threads=1),
                Variant("decode every epoch, 1 thread", [off], threads=1),
                Variant("cache, channels_last", channels_last=True),
                Variant("cache, 1 thread, channels_last", threads=1, channels_last=True),
                Variant("cache, batch 64", ["data.batch_size=64"]),
                Variant("cache, batch 128", ["data.batch_size=128"]),
            ],
        ),
        "flowers-data": (
            flowers,
            [
                Variant("decode every epoch (before)", [off], model=False),
                Variant("cache", [], model=False),
                Variant("decode every epoch, 2 workers", [off, w2], model=False),
                Variant("cache, 2 workers", [w2], model=False),
            ],
        ),
        "train.py": (
            [*flowers, "trainer.epochs=2", "trainer.checkpoint=false"],
            [
                Variant(
                    "no cache, no channels_last (before)", [off, "trainer.channels_last=false"]
                ),
                Variant("cache, no channels_last", ["trainer.channels_last=false"]),
                Variant("defaults (cache + channels_last)", []),
                Variant("defaults, 1 thread", ["trainer.num_threads=1"]),
            ],
        ),
        "digits": (
            ["data=digits"],
            [
                Variant("default"),
                Variant("1 thread", threads=1),
                Variant("2 workers", [w2]),
                Variant("channels_last", channels_last=True),
                Variant("batch 256", ["data.batch_size=256"]),
            ],
        ),
    }


def cpu_seconds() -> float:
    """CPU time of this process and its live children (DataLoader workers)."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if fields[1] == me and stat.parent.name not in BUSY_PIDS:
            # fields after the name: state, ppid, ..., utime (11), stime (12)
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    LOADS.append(os.getloadavg()[0])
    w, c = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - w, cpu_seconds() - c


def measure(base: list[str], v: Variant, epochs: int, max_batches: int | None) -> dict:
    """Build the data and model as `train.py` does, then time epochs of the real TrainStep."""
    import itertools

    from lrlab.engine.step import TrainStep, evaluate
    from lrlab.models import build_model
    from lrlab.utils import seed_everything
    from tests.helpers import build_data_from, build_optimizer_from, compose_cfg

    torch.set_num_threads(v.threads or DEFAULT_THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_cfg(base + v.overrides, Path(tmp))
        # The channel stats cache lives with the repo's data dir, as in real runs.
        cfg.paths.data_dir = str(ROOT / "data")
        seed_everything(cfg.seed)
        out: dict = {"variant": v.name}
        w, c = time.perf_counter(), cpu_seconds()
        data = build_data_from(cfg)
        out["build_wall"], out["build_cpu"] = time.perf_counter() - w, cpu_seconds() - c
        model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size)
        if v.channels_last:
            model = model.to(memory_format=torch.channels_last)
        step = TrainStep(model, build_optimizer_from(cfg, model), torch.device("cpu"))
        n_train = 0

        def train_epoch() -> None:
            nonlocal n_train
            model.train()
            for x, y in itertools.islice(data.train_loader, max_batches):
                if v.model:
                    step([(x, y)])
                n_train += len(y)

        def val_epoch() -> None:
            if v.model:
                evaluate(model, data.val_loader, step)
            else:
                for _ in data.val_loader:
                    pass

        for epoch in range(epochs):
            out[f"train_wall_{epoch}"], out[f"train_cpu_{epoch}"] = timed(train_epoch)
            out[f"val_wall_{epoch}"], out[f"val_cpu_{epoch}"] = timed(val_epoch)
        out["train_images"] = n_train // epochs
    return out


def median_row(rows: list[dict], epochs: int) -> dict:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    m = {"variant": rows[0]["variant"], "n": len(rows)}
    for k in ("build_wall", "build_cpu"):
        m[k] = med(k)
    for kind in ("train", "val"):
        for unit in ("wall", "cpu"):
            m[f"{kind}_{unit}"] = statistics.median(
                statistics.mean(r[f"{kind}_{unit}_{e}"] for e in range(epochs)) for r in rows
            )
    m["img_s"] = rows[0]["train_images"] / m["train_wall"]
    return m


def markdown(rows: list[dict]) -> str:
    base = rows[0]["train_wall"] + rows[0]["val_wall"], rows[0]["train_cpu"] + rows[0]["val_cpu"]
    lines = [
        "| variant | build s (wall / cpu) | train epoch s (wall / cpu) | train img/s | "
        "val s (wall / cpu) | epoch speed-up vs row 1 (wall / cpu) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        wall, cpu = r["train_wall"] + r["val_wall"], r["train_cpu"] + r["val_cpu"]
        lines.append(
            f"| {r['variant']} | {r['build_wall']:.2f} / {r['build_cpu']:.2f} "
            f"| {r['train_wall']:.2f} / {r['train_cpu']:.2f} | {r['img_s']:.0f} "
            f"| {r['val_wall']:.2f} / {r['val_cpu']:.2f} "
            f"| {base[0] / wall:.2f}x / {base[1] / cpu:.2f}x |"
        )
    return "\n".join(lines)


def run_suite(base: list[str], variants: list[Variant], args) -> tuple[str, dict]:
    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    measure(base, variants[0], 1, 2)  # warm-up: first imports and caches would bias row 1
    for rep in range(args.repeats):
        for v in variants:
            r = measure(base, v, args.epochs, args.max_batches)
            runs[v.name].append(r)
            print(f"[{rep + 1}/{args.repeats}] {v.name}: {json.dumps(r)}", flush=True)
    rows = [median_row(runs[v.name], args.epochs) for v in variants]
    return markdown(rows), runs


def train_py_suite(base: list[str], variants: list[Variant], args) -> tuple[str, dict]:
    """`python train.py` as users run it; epoch times from its metrics.jsonl."""
    runs: dict[str, list[dict]] = {v.name: [] for v in variants}
    py, script = sys.executable, str(ROOT / "train.py")
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for k, v in enumerate(variants):
                run_dir = Path(tmp, f"{rep}-{k}")
                cmd = [py, script, *base, *v.overrides, f"hydra.run.dir={run_dir}"]
                cmd.append(f"paths.data_dir={ROOT / 'data'}")  # the channel stats cache
                wall, cpu, _ = run_timed(cmd, Path(tmp), v.env)
                records = (run_dir / "metrics.jsonl").read_text().splitlines()
                rows = [json.loads(line) for line in records]
                epochs = [r["epoch_time_s"] for r in rows if r["type"] == "epoch"]
                runs[v.name].append({"wall": wall, "cpu": cpu, "epoch_time_s": epochs})
                print(f"[train.py {rep + 1}/{args.repeats}] {v.name}: {runs[v.name][-1]}")
    lines = [
        f"`python train.py {' '.join(base)}`, plus each variant's overrides:",
        "",
        "| variant | epoch 1 s | epoch 2 s | process wall s | process cpu s |",
        "|---|---|---|---|---|",
    ]
    for v in variants:
        rs = runs[v.name]
        e1, e2 = (statistics.median(r["epoch_time_s"][i] for r in rs) for i in (0, 1))
        wall, cpu = (statistics.median(r[k] for r in rs) for k in ("wall", "cpu"))
        extra = " ".join([*v.overrides, *(f"env {k}={x}" for k, x in v.env.items())])
        lines.append(
            f"| {v.name} (`{extra or 'defaults'}`) | {e1:.2f} | {e2:.2f} | {wall:.1f} | {cpu:.1f} |"
        )
    return "\n".join(lines), runs


# --- time to start ------------------------------------------------------------------------------


def run_timed(
    cmd: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and CPU seconds (children's rusage) of one command."""
    import resource

    LOADS.append(os.getloadavg()[0])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    env = {**os.environ, "PROJECT_ROOT": str(cwd), "PYTHONPATH": str(ROOT / "src")}
    env.update(extra_env or {})
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return wall, cpu, proc


def heavy_imports(importtime_stderr: str) -> dict[str, float]:
    """Top-level heavy packages in `python -X importtime` output, with cumulative seconds."""
    found: dict[str, float] = {}
    for line in importtime_stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(3).split(".")[0] in HEAVY and "." not in m.group(3):
            found[m.group(3)] = max(found.get(m.group(3), 0.0), int(m.group(1)) / 1e6)
    return found


def startup_suite(args) -> tuple[str, dict]:
    py = sys.executable
    commands = {
        "python -c 'import torch' (floor)": [py, "-c", "import torch"],
        "python -c 'import lrlab.tasks.train'": [py, "-c", "import lrlab.tasks.train"],
        "python train.py debug=fast (digits)": [py, str(ROOT / "train.py"), "debug=fast"],
        "python train.py debug=fast data=flowers": [
            py,
            str(ROOT / "train.py"),
            "debug=fast",
            "data=flowers",
            f"data.root={args.flowers_root}",
        ],
    }
    runs: dict[str, list[dict]] = {k: [] for k in commands}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for name, cmd in commands.items():
                wall, cpu, _ = run_timed(cmd, Path(tmp))
                runs[name].append({"wall": wall, "cpu": cpu})
                print(f"[startup {rep + 1}/{args.repeats}] {name}: {wall:.2f}s", flush=True)
        imports = {
            name: heavy_imports(run_timed([py, "-X", "importtime", *cmd[1:]], Path(tmp))[2].stderr)
            for name, cmd in commands.items()
            if "train.py" in " ".join(cmd) or "lrlab" in " ".join(cmd)
        }
    lines = ["| command | wall s | cpu s |", "|---|---|---|"]
    for name, rs in runs.items():
        wall = statistics.median(r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        lines.append(f"| `{name}` | {wall:.2f} | {cpu:.2f} |")
    lines += ["", "Heavy packages imported (cumulative import ms, `python -X importtime`):", ""]
    for name, found in imports.items():
        listed = ", ".join(f"{k} {1000 * v:.0f}" for k, v in sorted(found.items())) or "none"
        lines.append(f"- `{name}`: {listed}")
    return "\n".join(lines), {"runs": runs, "heavy_imports": imports}


# --- output -------------------------------------------------------------------------------------


def save(stem: str, text: str, payload: object) -> None:
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=1))


def header(args, name: str) -> str:
    import torchvision

    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), "?")
    return (
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
        f"- machine: {os.cpu_count()} CPU cores ({cpu}), no GPU; torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, python {platform.python_version()}, "
        f"torch threads by default: {DEFAULT_THREADS}\n"
        f"- load average (1 min) during the measurements: {min(LOADS):.1f} to {max(LOADS):.1f}"
        + (f"; {args.busy} busy-loop process(es) ran meanwhile" if args.busy else "")
        + "\n"
        f"- command: `.venv/bin/python benchmarks/{Path(__file__).name} "
        f"{' '.join(sys.argv[1:])}`\n"
        f"- medians of {args.repeats} round-robin repeats"
        + (f"; {args.epochs} epoch(s) per repeat" if name not in ("train.py", "startup") else "")
        + (f", first {args.max_batches} train batches" if args.max_batches else "")
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "suite", nargs="+", choices=["flowers", "flowers-data", "digits", "train.py", "startup"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-batches", type=int, default=None, help="train batches per epoch")
    parser.add_argument("--flowers-root", type=Path, default=FLOWERS)
    parser.add_argument("--only", default=None, help="regex: run only the matching variants")
    parser.add_argument("--busy", type=int, default=0, help="busy-loop processes meanwhile")
    args = parser.parse_args()
    all_suites = suites(args.flowers_root)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    BUSY_PIDS.update(str(b.pid) for b in busy)
    try:
        for name in args.suite:
            LOADS.clear()
            if name == "startup":
                table, payload = startup_suite(args)
            else:
                base, variants = all_suites[name]
                if args.only:
                    variants = [v for v in variants if re.search(args.only, v.name)]
                run = train_py_suite if name == "train.py" else run_suite
                table, payload = run(base, variants, args)
            text = f"## {name}\n\n{header(args, name)}\n{table}\n"
            save(name + (f"-busy{args.busy}" if args.busy else ""), text, payload)
            print(text, flush=True)
    finally:
        for b in busy:
            b.kill()


if __name__ == "__main__":
    main()
