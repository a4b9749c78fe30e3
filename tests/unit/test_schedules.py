"""Schedules vs torch's reference schedulers, value by value, plus resume and group ratios."""

from __future__ import annotations

import io
import itertools
import math
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch.optim import lr_scheduler as tls

from lrlab.errors import ConfigError
from lrlab.optim import build_scheduler, check_scheduler, group_momentum
from lrlab.optim.schedules import Schedule, anneal_cos, anneal_exp, anneal_linear, anneal_poly
from tests.helpers import scheduler_cfg

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
    got = trace(opt, build(scheduler_cfg("constant"), opt), TOTAL + 5)
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
    got = trace(opt, build({**scheduler_cfg("onecycle"), **p}, opt), TOTAL)
    assert_traces_close(got, expected)
    assert got[0][0] == pytest.approx(0.1 / p["div_factor"])
    assert got[-1][0] == pytest.approx(0.1 / p["div_factor"] / p["final_div_factor"])


# --- the fastai annealing formulas, at the values fastai's docs list


@pytest.mark.parametrize(
    "fn, start, end, expected",
    [
        (anneal_cos, 0, 2, [0, 0.29289, 1, 1.70711, 2]),
        (anneal_exp, 1, 2, [1, 1.18921, 1.41421, 1.68179, 2]),
        (lambda s, e, p: anneal_poly(s, e, p, 2), 0, 2, [0, 0.125, 0.5, 1.125, 2]),
        (anneal_linear, 0, 2, [0, 0.5, 1, 1.5, 2]),
    ],
)
def test_annealing_formulas(fn, start, end, expected):
    got = [fn(start, end, pct) for pct in (0, 0.25, 0.5, 0.75, 1)]
    assert got == pytest.approx(expected, abs=1e-5)


# --- clr / sgdr / cosine / step / plateau vs torch


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize(
    "mode, gamma, step_size, step_size_down",
    [
        ("triangular", 1.0, 1.0, None),
        ("triangular2", 1.0, 0.5, None),  # 3.5 -> 4 steps up: cycles of fractional epochs
        ("exp_range", 0.97, 1.0, 2.0),
    ],
)
def test_clr_matches_torch(kind, mode, gamma, step_size, step_size_down):
    up = math.floor(step_size * SPE + 0.5)
    down = None if step_size_down is None else math.floor(step_size_down * SPE + 0.5)
    ref_opt = make_opt(kind)
    ref = tls.CyclicLR(ref_opt, base_lr=0.1 / 6, max_lr=0.1, step_size_up=up,
                       step_size_down=down, mode=mode, gamma=gamma, cycle_momentum=True)  # fmt: skip
    expected = trace(ref_opt, ref, TOTAL)
    cfg = {**scheduler_cfg("clr"), "step_size": step_size, "step_size_down": step_size_down,
           "mode": mode, "gamma": gamma, "cycle_momentum": True}  # fmt: skip
    opt = make_opt(kind)
    got = trace(opt, build(cfg, opt), TOTAL)
    assert_traces_close(got, expected)
    assert got[0][0] == pytest.approx(0.1 / 6)  # base_lr: null -> peak / 6
    assert got[up][0] == pytest.approx(
        0.1 if mode != "exp_range" else 0.1 / 6 + 0.1 * 5 / 6 * gamma**up
    )


def test_clr_numeric_base_lr_and_momentum_off_by_default():
    ref_opt = make_opt()
    ref = tls.CyclicLR(ref_opt, base_lr=0.02, max_lr=0.1, step_size_up=SPE, cycle_momentum=False)
    expected = trace(ref_opt, ref, TOTAL)
    opt = make_opt()
    got = trace(opt, build({**scheduler_cfg("clr"), "base_lr": 0.02, "step_size": 1}, opt), TOTAL)
    assert_traces_close(got, expected)
    assert {row[-1] for row in got} == {0.9}  # the optimizer's own momentum, untouched


def test_clr_base_lr_follows_the_peak():
    """base_lr: null is peak / 6 of whatever lr the optimizer has (e.g. set by the LR finder)."""
    opt = make_opt(lrs=(0.37,))
    got = trace(opt, build({**scheduler_cfg("clr"), "step_size": 1}, opt), SPE + 1)
    assert got[0][0] == pytest.approx(0.37 / 6)
    assert got[SPE][0] == pytest.approx(0.37)


@pytest.mark.parametrize("t_0, t_mult, eta_min", [(1, 2, 0.0), (2, 1, 0.001), (1, 3, 0.01)])
def test_sgdr_matches_warm_restarts_with_fractional_epochs(t_0, t_mult, eta_min):
    spe, epochs = 8, 7  # t_mult 2: restarts at epochs 1, 3 (and 7, the end)
    ref_opt = make_opt()
    ref = tls.CosineAnnealingWarmRestarts(ref_opt, T_0=t_0, T_mult=t_mult, eta_min=eta_min)
    expected = trace(ref_opt, ref, spe * epochs, stepper=lambda t: ref.step((t + 1) / spe))
    cfg = {**scheduler_cfg("sgdr"), "t_0": t_0, "t_mult": t_mult, "eta_min": eta_min}
    opt = make_opt()
    got = trace(opt, build(cfg, opt, spe, epochs), spe * epochs)
    assert_traces_close(got, expected)
    restarts = [t for t in range(1, len(got)) if got[t][0] > got[t - 1][0]]
    first = [spe * t_0 * (t_mult**k - 1) // max(t_mult - 1, 1) for k in (1, 2)]
    expected_restarts = first if t_mult > 1 else [spe * t_0 * k for k in (1, 2, 3)]
    assert restarts == [r for r in expected_restarts if r < spe * epochs]


def test_sgdr_fastai_defaults_and_cycle_decay():
    opt = make_opt()
    got = trace(opt, build({**scheduler_cfg("sgdr"), "cycle_decay": 0.5}, opt, 4, 7), 28)
    lrs = [row[0] for row in got]
    assert [lrs[t] for t in (0, 4, 12)] == pytest.approx([0.1, 0.05, 0.025])  # epochs 0, 1, 3
    assert lrs[3] < lrs[4] and lrs[11] < lrs[12]  # restarts at epochs 1 and 3


@pytest.mark.parametrize("eta_min", [0.0, 0.004])
def test_cosine_matches_torch(eta_min):
    ref_opt = make_opt()
    ref = tls.CosineAnnealingLR(ref_opt, T_max=TOTAL, eta_min=eta_min)
    expected = trace(ref_opt, ref, TOTAL)  # the run's steps (torch reaches eta_min one later)
    opt = make_opt()
    got = trace(opt, build({**scheduler_cfg("cosine"), "eta_min": eta_min}, opt), TOTAL)
    assert_traces_close(got, expected)
    assert eta_min < got[-1][0] < eta_min + 0.1 * 0.01


def test_step_matches_multisteplr_with_fractional_milestones():
    ref_opt = make_opt()
    ref = tls.MultiStepLR(ref_opt, milestones=[SPE, 11], gamma=0.5)  # 1.5 epochs = 10.5 -> 11
    expected = trace(ref_opt, ref, TOTAL)
    opt = make_opt()
    got = trace(
        opt, build({**scheduler_cfg("step"), "milestones": [1, 1.5], "gamma": 0.5}, opt), TOTAL
    )
    assert_traces_close(got, expected)


def test_plateau_matches_reduce_lr_on_plateau():
    losses = [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    params = {"factor": 0.5, "patience": 1, "cooldown": 1, "min_lr": 0.02}
    ref_opt = make_opt(lrs=(0.1,))
    ref = tls.ReduceLROnPlateau(ref_opt, **params)
    opt = make_opt(lrs=(0.1, 0.01))
    sched = build({**scheduler_cfg("plateau"), **params}, opt, SPE, len(losses))
    for loss in losses:
        for _ in range(SPE):
            opt.step()
            sched.step()
        sched.epoch_end(loss)
        ref.step(loss)
        lr = ref_opt.param_groups[0]["lr"]
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr, lr / 10])
    assert ref_opt.param_groups[0]["lr"] == 0.02  # the run reached min_lr


def test_flat_cos_is_fastai_fit_flat_cos():
    spe, epochs = 10, 4  # 40 steps: flat for 30, cosine over the last 10
    opt = make_opt()
    lrs = [row[0] for row in trace(opt, build(scheduler_cfg("flat_cos"), opt, spe, epochs), 45)]
    assert lrs[:31] == [0.1] * 31
    assert lrs[35] == pytest.approx(anneal_cos(0.1, 1e-6, 0.5))
    assert lrs[40:] == [lrs[39]] * 5  # held past the end at the last planned step's value
    assert all(a > b for a, b in itertools.pairwise(lrs[30:40]))


# --- properties every schedule must have

ALL = {
    "constant": {},
    "step": {"milestones": [1, 2]},
    "cosine": {"eta_min": 0.001},
    "plateau": {},
    "clr": {"step_size": 0.5, "mode": "triangular2", "cycle_momentum": True},
    "onecycle": {},
    "sgdr": {"t_0": 0.5, "eta_min": 0.001},
    "flat_cos": {},
    "phases": {
        "phases": [
            {"pct": 0.2, "shape": "linear", "start": 0.1, "end": 1.0},
            {"epochs": 1, "shape": "const", "start": 1.0},
            {"shape": "exp", "start": 1.0, "end": 0.01},
        ],
    },
}


@pytest.mark.parametrize("name", sorted(ALL))
def test_group_ratios_held_at_every_step(name):
    peaks = (0.1, 0.01, 0.003)
    opt = make_opt(lrs=peaks)
    sched = build({**scheduler_cfg(name), **ALL[name], "warmup_epochs": 0.5}, opt)
    rows = trace(opt, sched, TOTAL + 3, stepper=lambda t: (sched.step(), sched.epoch_end(1.0)))
    for t, row in enumerate(rows):
        assert row[1] == pytest.approx(0.1 * row[0], rel=1e-12, abs=0), t
        assert row[2] == pytest.approx(0.03 * row[0], rel=1e-12, abs=0), t
    assert len({row[0] for row in rows}) > 3  # the lrs really moved


@pytest.mark.parametrize("name", sorted(ALL))
def test_stepping_past_the_end_holds_the_final_value(name):
    opt = make_opt(kind="adam")
    sched = build({**scheduler_cfg(name), **ALL[name]}, opt)
    rows = trace(opt, sched, 3 * TOTAL)
    assert rows[TOTAL - 1 :] == [rows[TOTAL - 1]] * (2 * TOTAL + 1)  # the last planned step's


@pytest.mark.parametrize(("spe", "epochs"), [(23, 7), (23, 3), (8, 1)])
def test_sgdr_holds_the_end_of_its_last_cycle_not_the_next_restart(spe, epochs):
    """A plan ending on a cycle boundary (7 = 1 + 2 + 4 epochs, 3 = 1 + 2, 1) must not jump
    back to the peak past its end (torch's next value there would be the restart)."""
    opt = make_opt()
    rows = trace(opt, build(scheduler_cfg("sgdr"), opt, spe, epochs), spe * epochs + spe)
    last = rows[spe * epochs - 1][0]
    assert last < min(r[0] for r in rows[: spe * epochs - 1]) and last < 0.1 * 0.05  # the bottom
    assert [r[0] for r in rows[spe * epochs :]] == [last] * spe


def test_sgdr_fractional_t_0_restarts_at_the_exact_fractional_epochs():
    """t_0 = 1/3 epoch with 23 steps per epoch: cycles of 23/3, 46/3, 92/3 steps end at 7.67,
    23 and 53.67 steps, so the restarts fall on steps 8, 23 and 54 (whole-step cycle lengths
    would drift to 8, 24, 56)."""
    opt = make_opt()
    rows = trace(opt, build({**scheduler_cfg("sgdr"), "t_0": 1 / 3}, opt, 23, 4), 23 * 4)
    restarts = [t for t in range(1, len(rows)) if rows[t][0] > rows[t - 1][0]]
    assert restarts == [8, 23, 54]
    # between restarts: the cosine of the fractional position, as torch would compute it
    t = 30  # the third cycle spans steps 23 .. 53.67
    expected = anneal_cos(0.1, 0.0, (t - 23) / (92 / 3))
    assert rows[t][0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", sorted(ALL))
def test_warmup_precedes_every_schedule(name):
    cfg = {**scheduler_cfg(name), **ALL[name]}
    plain_opt = make_opt(kind="adam")
    plain = trace(plain_opt, build(cfg, plain_opt, SPE, EPOCHS - 1), TOTAL - SPE)
    opt = make_opt(kind="adam")
    warm = build({**cfg, "warmup_epochs": 1, "warmup_start_factor": 0.1}, opt, SPE, EPOCHS)
    got = trace(opt, warm, TOTAL)
    # the warmup is torch's LinearLR(start_factor=0.1) up to the schedule's first lr ...
    ref_opt = make_opt(kind="adam", lrs=(plain[0][0],))
    ref = tls.LinearLR(ref_opt, start_factor=0.1, total_iters=SPE)
    assert [row[0] for row in got[:SPE]] == pytest.approx([r[0] for r in trace(ref_opt, ref, SPE)])
    assert {row[1] for row in got[:SPE]} == {plain[0][1]}  # momentum waits at its first value
    # ... then the schedule itself, over the remaining epochs
    assert_traces_close(got[SPE:], plain)


def run_with_epoch_ends(opt, sched, steps: int, start: int = 0) -> list[tuple]:
    """Trace with plateau-style epoch_end calls (val loss stalls from epoch 1) every SPE steps."""

    def stepper(t: int) -> None:
        sched.step()
        if (start + t + 1) % SPE == 0:
            sched.epoch_end(1.0)

    return trace(opt, sched, steps, stepper)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("k", [5, SPE * 2])
def test_state_dict_round_trip_resumes_exactly(name, k):
    cfg = {**scheduler_cfg(name), **ALL[name], "warmup_epochs": 0.5, "patience": 0} if name == "plateau" else {
        **scheduler_cfg(name), **ALL[name], "warmup_epochs": 0.5}  # fmt: skip
    steps = 2 * TOTAL
    opt = make_opt(kind="sgd", lrs=(0.1, 0.02))
    uninterrupted = run_with_epoch_ends(opt, build(cfg, opt), steps)

    opt_a = make_opt(kind="sgd", lrs=(0.1, 0.02))
    sched_a = build(cfg, opt_a)
    first = run_with_epoch_ends(opt_a, sched_a, k)
    buf = io.BytesIO()  # through torch.save/load(weights_only=True), as the checkpoint is
    torch.save({"optimizer": opt_a.state_dict(), "scheduler": sched_a.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)

    opt_b = make_opt(kind="sgd", lrs=(0.1, 0.02))
    sched_b = build(cfg, opt_b)  # the training loop's order: build, load optimizer, load schedule
    opt_b.load_state_dict(state["optimizer"])
    sched_b.load_state_dict(state["scheduler"])
    rest = run_with_epoch_ends(opt_b, sched_b, steps - k, start=k)
    assert first + rest == uninterrupted


def test_schedule_state_alone_restores_the_position():
    """Loading only the schedule's state (fresh optimizer) already puts lr and momentum in place."""
    opt_a = make_opt()
    sched_a = build(scheduler_cfg("onecycle"), opt_a)
    trace(opt_a, sched_a, 9)
    opt_b = make_opt()
    sched_b = build(scheduler_cfg("onecycle"), opt_b)
    sched_b.load_state_dict(sched_a.state_dict())
    assert opt_b.param_groups[0]["lr"] == opt_a.param_groups[0]["lr"]
    assert opt_b.param_groups[0]["momentum"] == opt_a.param_groups[0]["momentum"]


# --- momentum handling and configuration


def test_momentum_cycling_auto_follows_the_optimizer():
    opt = make_opt(kind="adagrad")  # no momentum to cycle: lr only, no error
    got = trace(opt, build(scheduler_cfg("onecycle"), opt), TOTAL)
    assert got[0][0] == pytest.approx(0.004) and got[0][-1] is None
    plain = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # momentum 0
    build(scheduler_cfg("onecycle"), plain)
    assert plain.param_groups[0]["momentum"] == 0  # plain SGD stays plain
    build({**scheduler_cfg("onecycle"), "cycle_momentum": True}, plain)
    assert plain.param_groups[0]["momentum"] == 0.95
    adam = make_opt(kind="adam")
    build({**scheduler_cfg("onecycle"), "cycle_momentum": False}, adam)
    assert adam.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"_target_": "lrlab.optim.schedules.Linear"}, "scheduler._target_='lrlab.optim.schedules.Linear' cannot be imported"),
        ({}, "scheduler needs a _target_"),
        (scheduler_cfg("onecycle", pct_strat=0.3), "scheduler: "),
        (scheduler_cfg("onecycle", pct_start=1.5), "scheduler.pct_start=1.5: must be in (0, 1)"),
        (scheduler_cfg("onecycle", div_factor=math.inf), "scheduler.div_factor=inf: must be > 0"),
        (scheduler_cfg("step", milestones=[1, math.nan]), "scheduler.milestones=[1, nan]"),
        (scheduler_cfg("onecycle", anneal_strategy="cosine"), "scheduler.anneal_strategy='cosine'"),
        (scheduler_cfg("onecycle", three_phase="yes"), "scheduler.three_phase='yes'"),
        (scheduler_cfg("clr", mode="triangle"), "scheduler.mode='triangle'"),
        (scheduler_cfg("clr", base_lr=0.5), "scheduler.base_lr=0.5"),
        (scheduler_cfg("clr", step_size=0), "scheduler.step_size=0"),
        (scheduler_cfg("step", milestones=[2, 1]), "scheduler.milestones=[2, 1]"),
        (scheduler_cfg("sgdr", t_mult=0.5), "scheduler.t_mult=0.5"),
        (scheduler_cfg("plateau", factor=2), "scheduler.factor=2"),
        (scheduler_cfg("plateau", patience=1.5), "scheduler.patience=1.5: must be an integer"),
        (scheduler_cfg("plateau", min_lr=0.2), "scheduler.min_lr=0.2: must be in [0, optimizer.lr=0.1)"),
        (scheduler_cfg("cosine", eta_min=1.0), "scheduler.eta_min=1.0"),
        (scheduler_cfg("constant", warmup_epochs=EPOCHS), "scheduler.warmup_epochs=3"),
        (scheduler_cfg("constant", warmup_epochs=-1), "scheduler.warmup_epochs=-1"),
        (scheduler_cfg("constant", warmup_start_factor=2), "scheduler.warmup_start_factor=2"),
    ],
)  # fmt: skip
def test_bad_config_values_raise_one_clear_error(cfg, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as err:
        build(cfg, make_opt())
    assert "\n" not in str(err.value)


def test_config_is_checked_before_the_optimizer_exists():
    """check_scheduler: the early check of the schedules' own values (the absolute lrs wait for
    the build, which knows the peak: optimizer.lr may be auto)."""
    check_scheduler(scheduler_cfg("cosine", eta_min=0.5))
    with pytest.raises(ConfigError, match=re.escape("scheduler.eta_min=0.5")):
        build(scheduler_cfg("cosine", eta_min=0.5), make_opt())
    with pytest.raises(ConfigError, match=re.escape("scheduler.gamma=2")):
        check_scheduler(scheduler_cfg("step", gamma=2))
    with pytest.raises(ConfigError, match=re.escape("optimizer_switch.scheduler.gamma=2")):
        check_scheduler(scheduler_cfg("step", gamma=2), "optimizer_switch.scheduler")


def test_cycle_momentum_true_needs_momentum():
    with pytest.raises(
        ConfigError, match=re.escape("scheduler.cycle_momentum=True: Adagrad has no momentum")
    ):
        build(scheduler_cfg("clr", cycle_momentum=True), make_opt(kind="adagrad"))


CONF = Path(__file__).resolve().parents[2] / "conf" / "scheduler"


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_yaml_files_state_every_value_and_build(path, make_cfg):
    """Each file states its schedule's arguments (the classes have no defaults of their own, so
    one left out fails to build) and lrlab's keys; each composes and builds."""
    import inspect

    from hydra.utils import get_object

    cfg = OmegaConf.to_container(make_cfg(f"scheduler={path.stem}").scheduler)
    target = get_object(cfg["_target_"])
    if not issubclass(target, Schedule):  # a torch/timm scheduler: its own arguments and defaults
        assert cfg["_target_"].startswith(("torch.optim.lr_scheduler.", "timm.scheduler."))
        build(cfg, make_opt())
        return
    params = inspect.signature(target).parameters.values()
    assert all(p.default is p.empty for p in params)  # no second copy of a default
    assert set(cfg) == {"_target_", "warmup_epochs", "warmup_start_factor", "params",
                        *(p.name for p in params)}  # fmt: skip
    build(cfg, make_opt())


# --- scripts/plot_schedule.py: the same config and code as training


@pytest.mark.slow  # builds the digits loaders and imports matplotlib: ~10 s
def test_plot_script_traces_the_training_schedule(tmp_path):
    pytest.importorskip("sklearn")  # the default data set (digits) comes with scikit-learn
    import csv
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "plot_schedule", Path(__file__).resolve().parents[2] / "scripts" / "plot_schedule.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    overrides = ["data=digits", "scheduler=onecycle", "optimizer=sgd", "trainer.epochs=2",
                 "trainer.accumulate_grad_batches=2", "model.lr_mult=10"]  # fmt: skip
    script.main([*overrides, "--out", str(tmp_path), "--name", "oc"])
    with open(tmp_path / "oc.csv") as f:
        rows = list(csv.DictReader(f))
    assert (tmp_path / "oc.png").stat().st_size > 0

    from lrlab.cli.preview import compose_config

    cfg = compose_config(overrides)
    from tests.helpers import build_data_from

    spe = math.ceil(len(build_data_from(cfg).train_loader) / 2)  # optimizer steps, not batches
    assert len(rows) == 2 * spe and float(rows[spe]["epoch"]) == 1.0
    lr, lr_last = float(rows[0]["lr"]), float(rows[0][list(rows[0])[-2]])
    assert lr == pytest.approx(0.05 / 25) and lr_last == pytest.approx(lr / 10)  # stem: lr/lr_mult
    assert float(rows[0]["momentum"]) == 0.95
    assert float(rows[-1]["lr"]) == pytest.approx(0.05 / 25 / 1e4)


# --- any torch / timm scheduler by _target_, stepped per optimizer step


TORCH_STEP = {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 4, "gamma": 0.5}


def test_a_torch_scheduler_by_target_is_stepped_per_optimizer_step():
    ref_opt, opt = make_opt(lrs=(0.1, 0.01)), make_opt(lrs=(0.1, 0.01))
    expected = trace(ref_opt, tls.StepLR(ref_opt, step_size=4, gamma=0.5), TOTAL)
    assert trace(opt, build(TORCH_STEP, opt), TOTAL) == expected
    assert expected[4][0] == 0.05  # it really decayed


def test_a_timm_scheduler_by_target_matches_timm_stepped_per_update():
    from timm.scheduler import CosineLRScheduler

    args = {"t_initial": 15, "lr_min": 1e-4, "warmup_t": 3, "warmup_lr_init": 1e-3,
            "t_in_epochs": False}  # fmt: skip
    ref_opt, opt = make_opt(), make_opt()
    ref = CosineLRScheduler(ref_opt, **args)
    expected = trace(ref_opt, ref, TOTAL, stepper=lambda t: ref.step_update(t + 1))
    got = trace(opt, build({"_target_": "timm.scheduler.CosineLRScheduler", **args}, opt), TOTAL)
    assert got == expected and got[0][0] == 1e-3 and got[TOTAL - 1][0] == 1e-4


@pytest.mark.parametrize(
    "name, shorter", [("torch_steplr", {"step_size": 4}), ("timm_cosine", {"t_initial": 15})]
)
@pytest.mark.parametrize("k", [5, 13])
def test_torch_and_timm_schedulers_resume_exactly_from_their_state(name, shorter, k):
    cfg = scheduler_cfg(name, **shorter)
    opt = make_opt()
    uninterrupted = trace(opt, build(cfg, opt), 2 * TOTAL)
    opt_a = make_opt()
    sched_a = build(cfg, opt_a)
    first = trace(opt_a, sched_a, k)
    buf = io.BytesIO()
    torch.save({"optimizer": opt_a.state_dict(), "scheduler": sched_a.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)  # as the checkpoint loads it
    opt_b = make_opt()
    sched_b = build(cfg, opt_b)
    opt_b.load_state_dict(state["optimizer"])
    sched_b.load_state_dict(state["scheduler"])
    assert first + trace(opt_b, sched_b, 2 * TOTAL - k) == uninterrupted
    assert len({row[0] for row in uninterrupted}) > 2


def test_reduce_lr_on_plateau_by_target_steps_with_the_validation_loss():
    opt = make_opt()
    sched = build({"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "patience": 0}, opt)
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.1  # not stepped per optimizer step
    sched.epoch_end(1.0)
    sched.epoch_end(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({**TORCH_STEP, "warmup_epochs": 1}, "scheduler.warmup_epochs: lrlab's keys are for lrlab schedules"),
        ({**TORCH_STEP, "step_sise": 4}, "scheduler: "),
        ({"_target_": "torch.optim.lr_scheduler.StepLR"}, "scheduler: "),
    ],
)  # fmt: skip
def test_bad_torch_scheduler_configs_are_one_line_errors(cfg, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as err:
        build(cfg, make_opt())
    assert "\n" not in str(err.value)


def test_a_phase_may_hold_any_schedule():
    """Composition: a phase that is itself a schedule (here cosine) over its part of the run,
    as fastai's combine_scheds([0.25, 0.75], [SchedLin(0.1, 1), SchedCos(1, 0)]); Hydra builds
    the nested `_target_`."""
    from hydra.utils import instantiate

    cosine = scheduler_cfg("cosine")
    nested = {"pct": 0.75, "schedule": {k: cosine[k] for k in ("_target_", "eta_min")}}
    cfg = scheduler_cfg("phases", phases=[{"pct": 0.25, "shape": "linear", "start": 0.1}, nested])
    spe, epochs = 8, 2  # 16 steps: 4 of warmup, 12 of cosine
    opt = make_opt()
    got = [r[0] for r in trace(opt, build(cfg, opt, spe, epochs), 16)]
    assert got[:4] == pytest.approx([0.1 * anneal_linear(0.1, 1.0, t / 4) for t in range(4)])
    assert got[4:] == pytest.approx([0.1 * anneal_cos(1.0, 0.0, t / 12) for t in range(12)])
    built = instantiate(
        {
            k: v
            for k, v in cfg.items()
            if k not in ("warmup_epochs", "warmup_start_factor", "params")
        }
    )
    assert isinstance(built.phases[1].schedule, Schedule)
