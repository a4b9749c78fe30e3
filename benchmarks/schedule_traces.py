"""Do two checkouts of lrlab set the same lr, momentum, betas and weight decay at every step?

Builds every file in conf/scheduler/ (bar the torch/timm ones, which only main lacks) with SGD
and Adam, with and without a warmup, on epochs of equal and of different lengths (the epoch
clock), plus variants (three_phase, cyclic momentum, weight decay params, SGDR decay, plateau
with cooldown), steps each 6 epochs past its 5-epoch plan with plateau-style epoch ends, and
compares the param groups' values bit for bit. Seconds, no training: the fast companion of
records_equal.py.

    .venv/bin/python benchmarks/schedule_traces.py              # main vs this working tree

Writes benchmarks/results/schedule_traces.md; exits 1 if any trace differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["constant", "step", "cosine", "plateau", "clr", "onecycle", "sgdr", "flat_cos", "phases",
         "trapezoid", "fine_tune"]  # fmt: skip
VARIANTS = [
    ("onecycle", "adam", ["scheduler.three_phase=true"]),
    (
        "clr",
        "sgd",
        ["scheduler.cycle_momentum=true", "scheduler.mode=exp_range", "scheduler.gamma=0.97"],
    ),
    ("cosine", "adamw", ["scheduler/params=weight_decay_rise"]),
    ("sgdr", "sgd", ["scheduler.t_mult=1", "scheduler.cycle_decay=0.5", "scheduler.eta_min=0.001"]),
    ("plateau", "sgd", ["scheduler.patience=0", "scheduler.cooldown=1", "scheduler.min_lr=0.001"]),
]
WARMUP = ["scheduler.warmup_epochs=1.5", "scheduler.warmup_start_factor=0.1"]
UNEVEN = [7, 9, 9, 4, 4]  # optimizer steps of each epoch (a resizing plan with batch sizes)


def dump(conf: Path, out: Path) -> None:
    """Every case's values at every step, with the lrlab on sys.path (run in each checkout)."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from lrlab.optim import build_scheduler

    try:
        from lrlab.optim.optimizer import SCALING_KEYS
    except ImportError:  # a ref from before optim/optimizer.py
        from lrlab.optim.lr_scaling import SCALING_KEYS
    from lrlab.tasks.config import register_configs

    register_configs()
    cases = [(n, o, w) for n in NAMES for o in ("sgd", "adam") for w in ([], WARMUP)] + VARIANTS
    traces = {}
    with initialize_config_dir(str(conf.resolve()), version_base=None):
        for name, opt_name, extra in cases:
            cfg = compose("train", [f"scheduler={name}", f"optimizer={opt_name}", *extra])
            for epoch_steps in (None, UNEVEN):
                model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
                ocfg = OmegaConf.to_container(cfg.optimizer)
                lr = ocfg["lr"]
                for key in SCALING_KEYS:
                    ocfg.pop(key, None)
                groups = [{"params": model[0].parameters(), "lr": lr / 10},
                          {"params": model[1].parameters()}]  # fmt: skip
                opt = instantiate(ocfg)(groups)
                sched = build_scheduler(cfg.scheduler, opt, 7, 5, epoch_steps)
                rows = []
                for epoch in range(6):
                    for _ in range(epoch_steps[min(epoch, 4)] if epoch_steps else 7):
                        keys = ("lr", "momentum", "betas", "weight_decay")
                        rows.append([[g[k] for k in keys if k in g] for g in opt.param_groups])
                        opt.step()
                        sched.step()
                    sched.epoch_end(2.0 if epoch == 0 else 1.0)
                traces[f"{name} {opt_name} {' '.join(extra)} epoch_steps={epoch_steps}"] = rows
    out.write_text(json.dumps(traces))


def run_dump(repo: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    subprocess.run([sys.executable, __file__, "--dump", str(repo / "conf"), str(out)], cwd=repo,
                   env=env, check=True, capture_output=True)  # fmt: skip
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main")
    parser.add_argument("--dump", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        dump(Path(args.dump[0]), Path(args.dump[1]))
        return 0
    git = ["git", "-C", str(ROOT)]
    ref_sha = subprocess.run([*git, "rev-parse", args.ref], capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="schedule_traces_") as tmp:
        ref = Path(tmp) / "ref"
        subprocess.run([*git, "worktree", "add", "--detach", str(ref), ref_sha], check=True,
                       capture_output=True)  # fmt: skip
        try:
            a = run_dump(ref, Path(tmp) / "ref.json")
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(ref)], capture_output=True)
        b = run_dump(ROOT, Path(tmp) / "new.json")
    differ = [k for k in a if a[k] != b.get(k)]
    steps = sum(len(v) for v in a.values())
    text = (f"# Schedule traces: {args.ref} ({ref_sha[:10]}) vs {head[:10]} (+ working tree)\n\n"
            f"`python benchmarks/schedule_traces.py --ref {args.ref}`: {len(a)} cases, {steps} "
            f"optimizer steps, every param group's lr, momentum, betas, weight_decay compared "
            f"bit for bit: {len(a) - len(differ)} identical, {len(differ)} different"
            + "".join(f"\n- differs: {k}" for k in differ) + "\n")  # fmt: skip
    (ROOT / "benchmarks" / "results" / "schedule_traces.md").write_text(text)
    print(text)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
