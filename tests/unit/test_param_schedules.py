"""`scheduler.params`: other hyper-parameters scheduled with the lr (fastai's ParamScheduler):
scaled keys keep the groups' ratios, absolute keys are set as given; resume; one-line errors."""

from __future__ import annotations

import io
import re

import pytest
import torch

from lrlab.errors import ConfigError
from lrlab.optim import build_scheduler
from lrlab.optim.schedules import anneal_cos, anneal_linear
from tests.helpers import scheduler_cfg

SPE, EPOCHS = 5, 4
N = SPE * EPOCHS


def groups_opt(kind: str = "adamw") -> torch.optim.Optimizer:
    """Three groups as lrlab builds them: head (decay), head.no_decay (wd 0), a stem at lr/10."""

    def p():
        return [torch.nn.Parameter(torch.zeros(2))]

    groups = [
        {"params": p(), "lr": 0.1},
        {"params": p(), "lr": 0.1, "weight_decay": 0.0},
        {"params": p(), "lr": 0.01, "weight_decay": 0.002},
    ]
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=0.1, weight_decay=0.01, betas=(0.9, 0.999))
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=0.01)
    if kind == "rmsprop":
        return torch.optim.RMSprop(groups, lr=0.1, alpha=0.99, weight_decay=0.01)
    return torch.optim.Adagrad(groups, lr=0.1, weight_decay=0.01)


def run(opt, sched, steps: int = N) -> list[list[dict]]:
    """Every group's hyper-parameters at each step (copies)."""
    rows = []
    for _ in range(steps):
        rows.append([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups])
        opt.step()
        sched.step()
    return rows


def constant_with(params: dict) -> dict:
    return {**scheduler_cfg("constant"), "params": params}


WD_RISE = {**scheduler_cfg("phases"), "phases": [{"shape": "linear", "start": 0.1, "end": 1.0}]}


def test_weight_decay_is_scaled_per_group():
    opt = groups_opt()
    rows = run(opt, build_scheduler(constant_with({"weight_decay": WD_RISE}), opt, SPE, EPOCHS))
    for t, groups in enumerate(rows):
        f = anneal_linear(0.1, 1.0, t / N)
        assert [g["weight_decay"] for g in groups] == pytest.approx([0.01 * f, 0.0, 0.002 * f])
        assert [g["lr"] for g in groups] == [0.1, 0.1, 0.01]  # the lr schedule is its own
    assert rows[0][0]["weight_decay"] == pytest.approx(0.001)


def test_absolute_keys_take_phase_values_in_every_group():
    opt = groups_opt()
    beta2 = {**scheduler_cfg("phases"), "phases": [{"pct": 0.5, "shape": "cos", "start": 0.99, "end": 0.999}, {"shape": "const", "start": 0.999}]}  # fmt: skip
    rows = run(opt, build_scheduler(constant_with({"beta2": beta2}), opt, SPE, EPOCHS))
    for t, groups in enumerate(rows):
        expected = anneal_cos(0.99, 0.999, t / (N / 2)) if t < N / 2 else 0.999
        assert [g["betas"] for g in groups] == [(0.9, pytest.approx(expected, rel=1e-12))] * 3


def test_a_builtin_shape_multiplies_the_configured_value_and_eta_min_is_a_value():
    opt = groups_opt()
    beta2 = {**scheduler_cfg("cosine"), "eta_min": 0.99}  # from the configured 0.999 down to 0.99
    rows = run(opt, build_scheduler(constant_with({"beta2": beta2}), opt, SPE, EPOCHS))
    got = [groups[2]["betas"][1] for groups in rows]
    assert got == pytest.approx([anneal_cos(0.999, 0.99, t / N) for t in range(N)], rel=1e-12)


@pytest.mark.parametrize(
    "kind, read", [("sgd", lambda g: g["momentum"]), ("adamw", lambda g: g["betas"][0])]
)
def test_momentum_is_sgd_momentum_or_adam_beta1(kind, read):
    opt = groups_opt(kind)
    mom = {**scheduler_cfg("phases"), "phases": [{"shape": "linear", "start": 0.95, "end": 0.85}]}
    rows = run(opt, build_scheduler(constant_with({"momentum": mom}), opt, SPE, EPOCHS))
    assert [read(groups[1]) for groups in rows] == pytest.approx(
        [anneal_linear(0.95, 0.85, t / N) for t in range(N)]
    )


def test_any_numeric_param_group_key():
    opt = groups_opt("rmsprop")
    alpha = {
        **scheduler_cfg("step"),
        "milestones": [2],
        "gamma": 0.5,
    }  # alpha 0.99, halved after epoch 2
    rows = run(opt, build_scheduler(constant_with({"alpha": alpha}), opt, SPE, EPOCHS))
    assert [groups[0]["alpha"] for groups in rows] == [0.99] * 10 + [0.495] * 10


def test_param_schedules_hold_their_end_past_the_plan_and_follow_the_lr_schedule():
    opt = groups_opt()
    cfg = {**scheduler_cfg("cosine"), "params": {"weight_decay": WD_RISE}}
    rows = run(opt, build_scheduler(cfg, opt, SPE, EPOCHS), N + 5)
    assert [r[0]["weight_decay"] for r in rows[N - 1 :]] == [rows[N - 1][0]["weight_decay"]] * 6
    assert rows[1][0]["lr"] < rows[0][0]["lr"]  # the cosine runs too


def test_resume_restores_every_scheduled_key_exactly():
    cfg = {**scheduler_cfg("onecycle"), "params": {"weight_decay": WD_RISE, "beta2": {**scheduler_cfg("cosine"), "eta_min": 0.99}}}  # fmt: skip
    opt = groups_opt()
    full = run(opt, build_scheduler(cfg, opt, SPE, EPOCHS))
    opt_a = groups_opt()
    sched_a = build_scheduler(cfg, opt_a, SPE, EPOCHS)
    first = run(opt_a, sched_a, 7)
    buf = io.BytesIO()
    torch.save({"optimizer": opt_a.state_dict(), "scheduler": sched_a.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt_b = groups_opt()
    sched_b = build_scheduler(cfg, opt_b, SPE, EPOCHS)
    opt_b.load_state_dict(state["optimizer"])
    sched_b.load_state_dict(state["scheduler"])
    assert first + run(opt_b, sched_b, N - 7) == full


def test_param_values_for_the_records():
    opt = groups_opt()
    cfg = {
        **scheduler_cfg("constant"),
        "params": {"weight_decay": WD_RISE, "beta2": scheduler_cfg("cosine")},
    }
    sched = build_scheduler(cfg, opt, SPE, EPOCHS)
    assert sched.param_values() == {"weight_decay": pytest.approx(0.001), "beta2": 0.999}
    assert (
        build_scheduler(scheduler_cfg("constant"), groups_opt(), SPE, EPOCHS).param_values() == {}
    )


@pytest.mark.parametrize(
    "kind, params, match",
    [
        ("adagrad", {"momentum": WD_RISE}, "scheduler.params.momentum: Adagrad's param groups have no number 'momentum'"),
        ("sgd", {"beta2": WD_RISE}, "scheduler.params.beta2: SGD's param groups have no number"),
        ("adamw", {"betas": WD_RISE}, "scheduler.params.betas: schedule beta1 and beta2"),
        ("adamw", {"lr": WD_RISE}, "scheduler.params.lr: the lr is scheduler itself"),
        ("adamw", {"beta2": scheduler_cfg("plateau")}, "scheduler.params.beta2._target_='lrlab.optim.schedules.Plateau': it adapts the lr only"),
        ("adamw", {"beta2": {"_target_": "lrlab.optim.schedules.Cosin"}}, "scheduler.params.beta2._target_='lrlab.optim.schedules.Cosin' cannot be imported"),
        ("adamw", {"beta2": {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2}}, "scheduler.params.beta2._target_='torch.optim.lr_scheduler.StepLR': not an lrlab"),
        ("adamw", {"beta2": scheduler_cfg("cosine", warmup_epochs=1)}, "scheduler.params.beta2.warmup_epochs: a param-group key's schedule has none of its own"),
        ("adamw", {"beta2": {**scheduler_cfg("cosine"), "eta_min": 1.5}}, "scheduler.params.beta2.eta_min=1.5: must be in [0, optimizer.lr=0.999)"),
        ("adamw", {"beta2": {**scheduler_cfg("phases"), "phases": [{"shape": "linear", "start": 0.9, "end": 1.0}]}}, "scheduler.params.beta2.phases: beta2 must stay below 1"),
        ("adamw", {"beta2": {**scheduler_cfg("phases"), "phases": [{"pct": 0.5}]}}, "scheduler.params.beta2.phases: the lengths add up to 0.5"),
        ("adamw", {"weight_decay": {**scheduler_cfg("cosine"), "params": {"eps": WD_RISE}}}, "scheduler.params.weight_decay.params: a param-group key's schedule has none of its own"),
        ("adamw", {"beta2": 0.99}, "scheduler.params.beta2=0.99: must be a schedule"),
    ],
)  # fmt: skip
def test_bad_param_schedules_are_one_line_errors(kind, params, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as err:
        build_scheduler(constant_with(params), groups_opt(kind), SPE, EPOCHS)
    assert "\n" not in str(err.value)


def test_a_scaled_key_at_zero_is_refused():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # weight_decay 0
    with pytest.raises(ConfigError, match=re.escape("the optimizer's weight_decay is 0")):
        build_scheduler(constant_with({"weight_decay": WD_RISE}), opt, SPE, EPOCHS)


def test_momentum_cycled_by_the_schedule_cannot_be_scheduled_twice():
    mom = {**scheduler_cfg("cosine"), "eta_min": 0.8}
    with pytest.raises(
        ConfigError, match=re.escape("scheduler._target_ (OneCycle) already cycles the momentum")
    ):
        build_scheduler(
            {**scheduler_cfg("onecycle"), "params": {"momentum": mom}},
            groups_opt("sgd"),
            SPE,
            EPOCHS,
        )
    with pytest.raises(
        ConfigError, match=re.escape("scheduler.params.beta1: scheduler._target_ (OneCycle)")
    ):
        build_scheduler(
            {**scheduler_cfg("onecycle"), "params": {"beta1": mom}}, groups_opt(), SPE, EPOCHS
        )
    opt = groups_opt("sgd")  # with cycle_momentum off, params may schedule it
    cfg = {**scheduler_cfg("onecycle"), "cycle_momentum": False, "params": {"momentum": mom}}
    rows = run(opt, build_scheduler(cfg, opt, SPE, EPOCHS))
    assert rows[0][0]["momentum"] == 0.9 and rows[-1][0]["momentum"] < 0.81
