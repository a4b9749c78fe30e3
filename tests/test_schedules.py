"""Schedules vs torch's reference schedulers, value by value, plus resume and group ratios."""

from __future__ import annotations

import pytest
import torch
from torch.optim import lr_scheduler as tls

from lrlab.schedules import build_scheduler, group_momentum

SPE, EPOCHS = 7, 3  # 21 optimizer steps: small, with fractional phase boundaries
TOTAL = SPE * EPOCHS


def make_opt(kind: str = "sgd", lrs: tuple[float, ...] = (0.1,)) -> torch.optim.Optimizer:
    """One param group per lr; optimizer.lr is the first group's lr."""
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0])
    if kind == "adagrad":
        return torch.optim.Adagrad(groups, lr=lrs[0])
    raise AssertionError(kind)


def trace(opt: torch.optim.Optimizer, sched, steps: int, stepper=None) -> list[tuple]:
    """(lr of every group..., momentum of group 0) used by each of `steps` optimizer steps."""
    out = []
    for t in range(steps):
        out.append((*(g["lr"] for g in opt.param_groups), group_momentum(opt.param_groups[0])))
        opt.step()
        if stepper is None:
            sched.step()
        else:
            stepper(t)
    return out


def assert_traces_close(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        assert x == pytest.approx(y, rel=1e-9, abs=1e-15), f"step {t}: {x} != {y}"


def build(cfg: dict, opt: torch.optim.Optimizer, spe: int = SPE, epochs: int = EPOCHS):
    return build_scheduler(cfg, opt, spe, epochs)


# --- constant / onecycle


def test_constant_keeps_every_group_lr():
    opt = make_opt(lrs=(0.1, 0.01))
    got = trace(opt, build({"name": "constant"}, opt), TOTAL + 5)
    assert all(row[:2] == (0.1, 0.01) and row[2] == 0.9 for row in got)


ONECYCLE = dict(
    pct_start=0.3,
    div_factor=25.0,
    final_div_factor=1e4,
    anneal_strategy="cos",
    three_phase=False,
    base_momentum=0.85,
    max_momentum=0.95,
)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize(
    "override",
    [
        {},
        {"anneal_strategy": "linear"},
        {"three_phase": True},
        {"pct_start": 0.25, "div_factor": 10.0},
    ],
)
def test_onecycle_matches_torch(kind, override):
    p = {**ONECYCLE, **override}
    ref_opt = make_opt(kind)
    ref = tls.OneCycleLR(ref_opt, max_lr=0.1, total_steps=TOTAL, **p)
    # OneCycleLR raises past total_steps, so its trace stops there.
    expected = trace(ref_opt, ref, TOTAL, stepper=lambda t: t < TOTAL - 1 and ref.step())
    opt = make_opt(kind)
    got = trace(opt, build({"name": "onecycle", **p}, opt), TOTAL)
    assert_traces_close(got, expected)
    assert got[0][0] == pytest.approx(0.1 / p["div_factor"])
    assert got[-1][0] == pytest.approx(0.1 / p["div_factor"] / p["final_div_factor"])
