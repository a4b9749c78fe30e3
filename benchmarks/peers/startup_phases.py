"""Where `python train.py data=flowers` spends its time before the first optimizer step.

    python benchmarks/peers/startup_phases.py --repeats 5 -- data.root=../shared/data/flowers
    python benchmarks/peers/startup_phases.py --repeats 5 --data digits   # the default run

Runs train.py in a fresh process per repeat (data=flowers, one train and one validation
batch, no checkpoint), with timers wrapped around the steps that lead to the first optimizer
step: the imports (hydra, torch, the rest of lrlab.tasks.train), Hydra's composition, the image
folder scan, the stratified split (with its sklearn import), the channel statistics, the
decoded image cache, the model, `torch.use_deterministic_algorithms` and the optimizer, and
the first step itself (Adam's first step imports torch._dynamo). Prints and saves
benchmarks/results/startup-phases.md: the median seconds of each phase.
"""

from __future__ import annotations

import argparse
import functools
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
MARK = "PHASE "


def child(overrides: list[str]) -> None:
    """Inside the measured process: wrap the phases, then run train.py as `python train.py`."""
    last = [float(os.environ["STARTUP_PHASES_LAUNCHED"])]  # the parent's clock at the launch

    def mark(name: str) -> None:
        now = time.time()
        print(MARK + json.dumps([name, now - last[0]]), flush=True)
        last[0] = now

    active: list[str] = []  # the phases now running, innermost last: time is exclusive

    def timed(module, attr: str, name: str, once: bool = False) -> None:
        fn = getattr(module, attr)

        @functools.wraps(fn)
        def wrapper(*a, **k):
            mark(active[-1] if active else "Hydra: compose the config, logging, run dir")
            active.append(name)
            try:
                return fn(*a, **k)
            finally:
                mark(active.pop())
                if once:
                    setattr(module, attr, fn)

        setattr(module, attr, wrapper)

    mark("python start-up (interpreter, site, this script)")
    from lrlab.runtime import configure_process

    configure_process()
    import hydra  # noqa: F401
    import omegaconf  # noqa: F401

    import lrlab.cli.jobs

    mark("import hydra, omegaconf, lrlab.cli.jobs")
    import torch

    mark("import torch")
    import lrlab.engine.step
    import lrlab.tasks.build
    import lrlab.tasks.train

    mark("import lrlab.tasks.train (rest)")
    import lrlab.data.digits as digits
    import lrlab.data.folder as folder
    import lrlab.data.split as split

    # Time between the imports above and run_job is Hydra's (compose, logging, run dir); time
    # in run_job outside the phases below is lrlab's own (records, versions, loop set-up).
    timed(
        lrlab.cli.jobs,
        "run_job",
        "lrlab's own set-up in the job (records, loggers, loop)",
        once=True,
    )
    timed(split, "stratified_split", "stratified split (sklearn import)")
    timed(digits, "load_digits", "digits CSV (data=digits)")
    timed(folder, "channel_stats", "channel statistics")
    timed(folder, "cached_datasets", "decoded image cache")
    timed(folder, "image_folder", "image folder scan (torchvision import)")
    timed(torch, "use_deterministic_algorithms", "torch.use_deterministic_algorithms")
    timed(lrlab.tasks.build, "build_model", "model")
    timed(lrlab.tasks.build, "build_optimizer", "optimizer")
    timed(lrlab.engine.step.TrainStep, "__call__", "first optimizer step", once=True)
    sys.argv = [str(ROOT / "train.py"), *overrides]
    import runpy

    runpy.run_path(str(ROOT / "train.py"), run_name="__main__")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data", default="flowers", help="the data option: flowers or digits")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", help="train.py overrides (after --)")
    args = p.parse_args()
    if args.child:
        child(args.overrides)
        return
    runs: list[dict[str, float]] = []
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        base = [f"data={args.data}", "trainer.epochs=1", "trainer.limit_train_batches=1"]
        base += ["trainer.limit_val_batches=1", "trainer.checkpoint=false"]
        base += [f"paths.data_dir={tmp}/data", *args.overrides]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PROJECT_ROOT": tmp}
        for rep in range(args.repeats + 1):  # the first run fills the channel stats cache
            loads.append(os.getloadavg()[0])
            cmd = [sys.executable, __file__, "--child", "--", *base, f"hydra.run.dir={tmp}/{rep}"]
            env["STARTUP_PHASES_LAUNCHED"] = str(time.time())
            out = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
            if out.returncode:
                sys.exit(out.stderr[-3000:])
            phases: dict[str, float] = {}
            for line in out.stdout.splitlines():
                if line.startswith(MARK):
                    name, seconds = json.loads(line[len(MARK) :])
                    phases[name] = phases.get(name, 0.0) + seconds
            print(f"[{rep}] {json.dumps(phases)}", flush=True)
            if rep:
                runs.append(phases)
    names = list(runs[0])
    total = statistics.median(sum(r.values()) for r in runs)
    lines = [
        f"## start-up phases of `python train.py data={args.data}` (command to first step)",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"`python benchmarks/peers/startup_phases.py {' '.join(sys.argv[1:])}`",
        f"- {args.repeats} runs (after one that fills the channel stats cache); "
        f"1-min load {min(loads):.1f} to {max(loads):.1f}; medians",
        "",
        "| phase | s |",
        "|---|---|",
        *(f"| {n} | {statistics.median(r.get(n, 0.0) for r in runs):.2f} |" for n in names),
        f"| **total, command to end of first step** | **{total:.2f}** |",
    ]
    text = "\n".join(lines) + "\n"
    out_dir = ROOT / "benchmarks" / "results"
    name = "startup-phases" if args.data == "flowers" else f"startup-phases-{args.data}"
    (out_dir / f"{name}.md").write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(runs, indent=1))
    print(text)


if __name__ == "__main__":
    main()
