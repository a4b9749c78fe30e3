"""The GPU check's driver (run it through `bash benchmarks/gpu/check.sh`, which installs what is
missing first): lrlab's precisions, torch.compile, channels_last and a one-GPU torchrun run,
images per second against a hand-written loop and timm's own train.py, and the seed study's
full-length time estimated from a timed slice. Writes a Markdown report (`--out`).

`--dry-run`: the same steps on the CPU, tiny (a generated image folder, 2 batches an epoch,
one thread per process), so that the test suite keeps the script working
(tests/integration/test_gpu_check.py). The runs that differ in one key only (the precisions,
channels_last) are one `train.py -m` sweep: one process and start-up for them all.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOWERS = ROOT.parent / "shared" / "data" / "flowers"
PY = sys.executable
# The dry run's processes on one thread each: on a small shared CPU torch's default threads
# oversubscribe it (the hand-written loop ran 5x slower), and its timings mean nothing anyway.
DRY_ENV = {"OMP_NUM_THREADS": "1"}
ENV: dict[str, str] = {}  # what every process of this check gets (DRY_ENV in the dry run)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class Report:
    dry_run: bool
    checks: list[Check] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def add(self, name: str, ok: bool, detail: str, seconds: float) -> None:
        self.checks.append(Check(name, ok, detail, seconds))
        print(f"[{'ok' if ok else 'FAIL'}] {name}: {detail} ({seconds:.0f}s)", flush=True)


class Steps:
    """What one step of the check found; `Report` prints and keeps them in the steps' order."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def add(self, name: str, ok: bool, detail: str, seconds: float) -> None:
        self.checks.append(Check(name, ok, detail, seconds))


def run_step(step: Callable[[Steps], None]) -> list[Check]:
    found = Steps()
    step(found)
    return found.checks


def run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[int, str, float]:
    env = {**ENV, **(env or {})}
    start = time.perf_counter()
    try:
        p = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **env},
        )  # fmt: skip
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out, rc = f"timed out after {timeout}s: {e.stdout or ''}", 124
    return rc, out, time.perf_counter() - start


def lrlab(out: Path, *overrides: str, timeout: float = 240, launcher: list[str] | None = None):
    """One train.py run: (summary or None, epoch rows, seconds, output tail)."""
    cmd = [*(launcher or [PY]), "train.py", f"paths.output_dir={out}"]
    cmd += ["trainer.progress_bar=false", *overrides]
    rc, text, seconds = run(cmd, timeout)
    return (*run_result(out, rc == 0), seconds, text[-600:])


def lrlab_sweep(out: Path, key: str, values: list[str], *overrides: str, timeout: float = 600):
    """`train.py -m key=v1,v2,...`: the runs one after another in one process (no Python and
    torch start-up per run); per value as `lrlab` gives it, the seconds split evenly."""
    cmd = [PY, "train.py", "-m", f"hydra.sweep.dir={out}", "hydra.sweep.subdir=${hydra.job.num}"]
    cmd += ["trainer.progress_bar=false", *overrides, f"{key}={','.join(values)}"]
    _rc, text, seconds = run(cmd, timeout)
    results = [run_result(out / str(k), True) for k in range(len(values))]
    return [(*r, seconds / len(values), text[-600:]) for r in results]


def run_result(out: Path, ok: bool) -> tuple[dict | None, list[dict]]:
    """A run dir's summary (None unless `ok` and completed) and its epoch rows."""
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text()) if ok and summary_file.exists() else None
    if summary is not None and summary.get("status") != "completed":
        summary = None
    metrics = out / "metrics.jsonl"
    rows = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.exists() else []
    return summary, [r for r in rows if r["type"] == "epoch"]


def finite(rows: list[dict]) -> bool:
    values = [r[k] for r in rows for k in ("train_loss", "val_loss")]
    return bool(values) and all(v is not None and math.isfinite(v) for v in values)


def tiny_folder(root: Path) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("a", "b", "c")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(12):
            pixels = np.clip(60 * (k + 1) + rng.normal(0, 20, (40, 48, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.md")
    p.add_argument("--flowers", type=Path, default=FLOWERS)
    p.add_argument("--timm-train", type=Path, default=Path(__file__).with_name("timm_train.py"))
    args = p.parse_args()
    import torch

    work = Path(tempfile.mkdtemp(prefix="lrlab-gpu-check-"))
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu/check.py: no CUDA device here; use --dry-run for the CPU check")
    report = Report(dry)
    if dry:
        ENV.update(DRY_ENV)
    flowers = tiny_folder(work / "images") if dry else args.flowers
    device = "cpu" if dry else "cuda"
    short = ["trainer.limit_train_batches=2", "trainer.limit_val_batches=1"] if dry else []
    epochs = 1 if dry else 5
    base = [f"trainer.device={device}", f"trainer.epochs={epochs}", *short]
    flowers_data = ["data=flowers", f"data.root={flowers}", f"paths.data_dir={work / 'data'}"]
    fast = "32" if dry else "bf16-mixed"  # the precision of the speed runs

    def precisions(report: Steps) -> None:
        # 1. precisions on digits and the flowers: finite losses, accuracy as the float32 run's
        accuracy: dict[tuple[str, str], float] = {}
        # the dry run: the precisions on digits only (fp16 is slow on a CPU); its flowers 32 run
        # is step 2's channels_last=true run (the same command there)
        for data_name, data in (("digits", []), *([] if dry else [("flowers", flowers_data)])):
            chosen = ["32", "bf16-mixed", "16-mixed"]
            runs = lrlab_sweep(work / data_name, "trainer.precision", chosen, *base, *data)
            for precision, (summary, rows, s, tail) in zip(chosen, runs, strict=True):
                ok = summary is not None and finite(rows)
                acc = rows[-1]["val_acc"] if rows else float("nan")
                accuracy[data_name, precision] = acc
                ref = accuracy.get((data_name, "32"), acc)
                tolerance = 0.04 if data_name == "digits" else 0.08  # ~2 sd of the val accuracy
                close = dry or abs(acc - ref) <= tolerance
                detail = f"val_acc {acc:.3f} (32: {ref:.3f}), losses finite: {finite(rows)}"
                report.add(f"{data_name} {precision}", ok and close, detail if ok else tail, s)
        if not dry:  # the CPU's own digits run, for "as on the CPU"
            summary, rows, s, tail = lrlab(
                work / "digits-cpu", "trainer.device=cpu", "trainer.epochs=5"
            )
            acc = rows[-1]["val_acc"] if rows else float("nan")
            gpu = accuracy["digits", "32"]
            report.add(
                "digits on the CPU",
                abs(acc - gpu) <= 0.04,
                f"val_acc {acc:.3f} (GPU 32: {gpu:.3f})",
                s,
            )

    def compile_and_layouts(report: Steps) -> None:
        # 2. torch.compile and channels_last (the flowers, bf16 on a GPU)
        if dry:
            report.add("trainer.compile=true", True, "skipped in the dry run (needs a compiler)", 0)
        else:
            summary, rows, s, tail = lrlab(
                work / "compile",
                *base,
                *flowers_data,
                f"trainer.precision={fast}",
                "trainer.compile=true",
            )
            report.add(
                "trainer.compile=true",
                summary is not None and finite(rows),
                epoch_rate(rows) if rows else tail,
                s,
            )
        layouts = ["true", "false"]
        runs = lrlab_sweep(
            work / "channels_last", "trainer.channels_last", layouts, *base, *flowers_data,
            f"trainer.precision={fast}",
        )  # fmt: skip
        for cl, (summary, rows, s, tail) in zip(layouts, runs, strict=True):
            detail = epoch_rate(rows) if summary else tail
            report.add(f"channels_last={cl}", summary is not None and finite(rows), detail, s)
            if dry and cl == "true":  # trainer.precision=32 here: step 1's flowers 32 run
                acc = rows[-1]["val_acc"] if rows else float("nan")
                detail = (
                    f"val_acc {acc:.3f} (the channels_last=true run), losses finite: {finite(rows)}"
                )
                report.add("flowers 32", summary is not None and finite(rows), detail, s)

    def torchrun(report: Steps) -> None:
        # 3. torchrun, one process (nccl on a GPU, gloo on the CPU)
        summary, rows, s, tail = lrlab(
            work / "torchrun", *base, "trainer.epochs=2",
            launcher=[PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"],
        )  # fmt: skip
        backend = "nccl" if device == "cuda" else "gloo"
        report.add(
            f"torchrun 1 process ({backend})",
            summary is not None and finite(rows),
            tail[-200:] if summary is None else "completed",
            s,
        )

    def rates(report: Steps) -> None:
        # 4. images per second: lrlab vs a hand-written loop vs timm's train.py (same timm model,
        # data, batch size and precision)
        model, size, batch = ("resnet18", 32, 8) if dry else ("resnet18", 64, 256)
        n_epochs = 2 if dry else 4
        _summary, rows, s, tail = lrlab(
            work / "rate-lrlab", f"trainer.device={device}", f"trainer.epochs={n_epochs}",
            *flowers_data, "model=timm", f"model.name={model}", f"data.image_size={size}",
            f"data.batch_size={batch}", f"trainer.precision={fast}", *short,
        )  # fmt: skip
        # training images per epoch: 2 batches in the dry run, else the 80% split of the folder
        n_images = sum(1 for f in Path(flowers).glob("*/*") if f.is_file())
        n_train = 2 * batch if dry else round(0.8 * n_images)
        lrlab_rate = images_per_s(rows[1:], n_train or 0) if rows else None
        report.add(
            "img/s lrlab",
            lrlab_rate is not None,
            f"{lrlab_rate or 0:.0f} img/s" if lrlab_rate else tail,
            s,
        )
        _rc, text, s = run(
            [PY, "benchmarks/gpu/hand_loop.py", "--root", str(flowers), "--model", model, "--size",
             str(size), "--batch-size", str(batch), "--precision", fast, "--epochs", str(n_epochs),
             *(["--workers", "0"] if dry else [])],
            600,
        )  # fmt: skip
        epochs_ = [json.loads(x) for x in text.splitlines() if x.startswith('{"epoch"')]
        hand = (
            sum(e["images"] for e in epochs_[1:]) / sum(e["train_s"] for e in epochs_[1:])
            if len(epochs_) > 1
            else None
        )
        report.add(
            "img/s hand-written loop",
            hand is not None,
            f"{hand or 0:.0f} img/s" if hand else text[-300:],
            s,
        )
        timm_cmd = [PY, str(args.timm_train), "--data-dir", str(flowers), "--model", model,
                    "--img-size", str(size), "-b", str(batch), "--epochs", str(n_epochs),
                    "--opt", "adam", "--lr", "1e-3", "--sched", "cosine", "--warmup-epochs", "0",
                    "--log-interval", "1", "--output", str(work / "timm"), "--channels-last",
                    "--workers", "0" if dry else str(min(8, (os.cpu_count() or 2) - 1))]  # fmt: skip
        if fast != "32":
            timm_cmd += ["--amp", "--amp-dtype", "bfloat16"]
        if dry:
            timm_cmd += ["--device", "cpu"]
        _rc, text, s = run(timm_cmd, 600)
        rates = [float(r) for r in re.findall(r"Train: [1-9]\d* .*?([\d.]+)/s", text)]
        timm_rate = sorted(rates)[len(rates) // 2] if rates else None
        report.add(
            "img/s timm train.py",
            timm_rate is not None,
            f"{timm_rate or 0:.0f} img/s (median of its per-batch rates, epochs 2+)"
            if timm_rate
            else text[-400:],
            s,
        )
        if lrlab_rate and timm_rate:
            ratio = lrlab_rate / timm_rate
            report.add(
                "lrlab / timm img/s", dry or ratio >= 0.95, f"{ratio:.2f}x (target >= 0.95x)", 0
            )

    def seed_study_slice(report: Steps) -> None:
        # 5. the seed study (21 runs x 150 epochs at 128 px) from a timed slice, 3 jobs sharing
        # the GPU (the dry run: 2 small jobs, enough to run the same code)
        slice_epochs, n_jobs, size = (1, 2, 32) if dry else (3, 3, 128)
        seed = ["experiment=optimizer_comparison", f"data.root={flowers}", f"paths.data_dir={work / 'data'}",
                f"trainer.device={device}", f"trainer.epochs={slice_epochs}", f"data.image_size={size}", *short]  # fmt: skip
        jobs = []
        start = time.perf_counter()
        for k in range(n_jobs):
            out = work / f"seed-{k}"
            cmd = [
                PY,
                "train.py",
                f"paths.output_dir={out}",
                "trainer.progress_bar=false",
                *seed,
                f"seed={k}",
            ]
            jobs.append(
                (
                    out,
                    subprocess.Popen(
                        cmd,
                        cwd=ROOT,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.STDOUT,
                        env={**os.environ, **ENV},
                    ),
                )
            )
        codes = [j.wait(timeout=600) for _, j in jobs]
        s = time.perf_counter() - start
        per_epoch = []
        for out, _ in jobs:
            metrics = out / "metrics.jsonl"
            rows = (
                [json.loads(x) for x in metrics.read_text().splitlines()]
                if metrics.exists()
                else []
            )
            times = [r["epoch_time_s"] for r in rows if r["type"] == "epoch"]
            per_epoch += times[1:] or times
        if per_epoch and not any(codes):
            epoch_s = sorted(per_epoch)[len(per_epoch) // 2]
            hours = 21 * 150 * epoch_s / n_jobs / 3600  # n_jobs at a time on one device
            report.add(
                "seed study estimate",
                True,
                f"{hours:.2f} h for 21 x 150 epochs, {n_jobs} jobs sharing (median epoch {epoch_s:.2f}s with {n_jobs} running)",
                s,
            )
        else:
            report.add("seed study estimate", False, f"jobs exited {codes}", s)

    # The dry run's processes are one thread each: two steps at a time use the two cores of a
    # small CPU. On a GPU the steps run one after another (each one's speed is measured).
    steps = [precisions, compile_and_layouts, torchrun, rates, seed_study_slice]
    with ThreadPoolExecutor(max_workers=2 if dry else 1) as pool:
        done = [pool.submit(run_step, step) for step in steps]
        for future in done:
            for check in future.result():
                report.add(check.name, check.ok, check.detail, check.seconds)
    write(report, args.out, torch)
    if dry:  # tiny runs of no further use; a real check keeps its run dirs for a look afterwards
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"run dirs: {work}")
    sys.exit(0 if all(c.ok for c in report.checks) else 1)


def epoch_rate(rows: list[dict]) -> str:
    times = [r["epoch_time_s"] for r in rows]
    later = times[1:] or times
    return (
        f"epoch {sorted(later)[len(later) // 2]:.2f}s (median after the first), {len(times)} epochs"
    )


def images_per_s(rows: list[dict], n_train: int) -> float | None:
    times = [r["epoch_time_s"] for r in rows]
    return n_train * len(times) / sum(times) if times and n_train else None


def write(report: Report, out: Path, torch) -> None:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (dry run)"
    lines = [
        "# GPU check (benchmarks/gpu/check.sh)",
        "",
        f"{'DRY RUN on the CPU: tiny sizes, no speed meaning. ' if report.dry_run else ''}"
        f"Device: {device}; torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "lrlab's img/s: training images / epoch time (validation included); the hand-written "
        "loop's: training only; timm's: its own per-batch rate (training only).",
        "",
        "| check | ok | result | seconds |",
        "|---|---|---|---|",
        *(f"| {c.name} | {'yes' if c.ok else 'NO'} | {c.detail.strip().replace('|', '/').replace(chr(10), ' ')[:300]} | {c.seconds:.0f} |" for c in report.checks),
    ]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
