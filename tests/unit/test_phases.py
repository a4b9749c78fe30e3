"""`scheduler=phases` value by value: fastai's combine_scheds / fit_one_cycle / fine_tune test
values, and the built-in schedules it can express (torch's OneCycleLR, flat_cos, warmup+cosine)."""

from __future__ import annotations

import re

import pytest
import torch
from omegaconf import OmegaConf
from torch.optim import lr_scheduler as tls

from lrlab.errors import ConfigError
from lrlab.optim import build_scheduler
from lrlab.optim.schedules import Phases, Plan, anneal_cos, anneal_linear
from tests.helpers import scheduler_cfg
from tests.unit.test_schedules import assert_traces_close, make_opt, trace


def fastai_combine_scheds(pcts, scheds):
    """fastai.callback.schedule.combine_scheds as written there (torch cumsum and nonzero), in
    float64 where fastai's tensor is float32 (so that values agree to 1e-9, not 1e-6)."""
    assert sum(pcts) == 1.0
    pcts = torch.tensor([0, *pcts], dtype=torch.float64)
    pcts = torch.cumsum(pcts, 0)
    pct_lim = len(pcts) - 2

    def inner(pos):
        idx = min((pos >= pcts).nonzero().max(), pct_lim)
        actual_pos = (pos - pcts[idx]) / (pcts[idx + 1] - pcts[idx])
        return scheds[idx](actual_pos.item())

    return inner


def sched_cos(start, end):  # fastai's SchedCos
    return lambda pos: anneal_cos(start, end, pos)


def fastai_combined_cos(pct, start, middle, end):
    return fastai_combine_scheds([pct, 1 - pct], [sched_cos(start, middle), sched_cos(middle, end)])


def phases(*specs, n=100, run_epochs=1.0, convention="fastai"):
    return Phases(list(specs), convention).curve(Plan(n, 1, 1.0, run_epochs))


# --- fastai's documented test values (nbs/14_callback.schedule.ipynb)


def test_combine_scheds_documented_values():
    # combine_scheds([0.3, 0.2, 0.5], [SchedLin(0., 1.), SchedNo(1., 1.), SchedCos(1., 0.)])
    f = phases(
        {"pct": 0.3, "shape": "linear", "start": 0.0, "end": 1.0},
        {"pct": 0.2, "shape": "const", "start": 1.0},
        {"pct": 0.5, "shape": "cos", "start": 1.0, "end": 0.0},
    )
    got = [f(pos * 100) for pos in (0.0, 0.15, 0.3, 0.4, 0.5, 0.7, 1.0)]
    assert got == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 0.65451, 0.0], abs=1e-5)


def test_combined_cos_documented_values():
    f = phases(  # combined_cos(0.25, 0.5, 1., 0.)
        {"pct": 0.25, "shape": "cos", "start": 0.5, "end": 1.0},
        {"shape": "cos", "start": 1.0, "end": 0.0},
    )
    got = [f(pos * 100) for pos in (0.0, 0.1, 0.25, 0.5, 1.0)]
    assert got == pytest.approx([0.5, 0.67275, 1.0, 0.75, 0.0], abs=1e-5)


@pytest.mark.parametrize("n", [20, 37, 100])
def test_phases_equal_fastai_combine_scheds_at_every_step(n):
    specs = [
        {"pct": 0.3, "shape": "linear", "start": 0.0, "end": 1.0},
        {"pct": 0.2, "shape": "const", "start": 1.0},
        {"pct": 0.1, "shape": "exp", "start": 1.0, "end": 0.1},
        {"pct": 0.4, "shape": "poly", "start": 0.1, "end": 0.0, "power": 0.5},
    ]
    ref = fastai_combine_scheds(
        [0.3, 0.2, 0.1, 0.4],
        [
            lambda p: anneal_linear(0.0, 1.0, p),
            lambda p: 1.0,
            lambda p: 1.0 * (0.1 / 1.0) ** p,
            lambda p: 0.1 + (0.0 - 0.1) * p**0.5,
        ],
    )
    f = phases(*specs, n=n)
    for t in range(n):
        assert f(t) == pytest.approx(ref(t / n), rel=1e-9, abs=1e-12), t


def test_fit_one_cycle_documented_schedule():
    """fastai: after learn.fit_one_cycle(2) on 10 batches per epoch, the recorded lrs are
    combined_cos(0.25, 1e-2/25, 1e-2, 1e-7)(i/20) and the moms combined_cos(0.25, .95, .85, .95)."""
    opt = make_opt(kind="adam", lrs=(1e-2,))
    cfg = OmegaConf.create(scheduler_cfg("phases"))  # the default phases: fit_one_cycle's lr
    cfg.params = {
        "momentum": {
            **scheduler_cfg("phases"),
            "phases": [
                {"pct": 0.25, "shape": "cos", "start": 0.95, "end": 0.85},
                {"shape": "cos", "start": 0.85, "end": 0.95},
            ],
        }
    }
    got = trace(opt, build_scheduler(cfg, opt, 10, 2), 20)
    lrs = fastai_combined_cos(0.25, 1e-2 / 25, 1e-2, 1e-7)
    moms = fastai_combined_cos(0.25, 0.95, 0.85, 0.95)
    assert [r[0] for r in got] == pytest.approx([lrs(i / 20) for i in range(20)], rel=1e-9)
    assert [r[1] for r in got] == pytest.approx([moms(i / 20) for i in range(20)], rel=1e-9)
    assert {g["betas"][1] for g in opt.param_groups} == {0.999}  # beta2 untouched


def test_param_scheduler_documented_linear_lr():
    """fastai: ParamScheduler({'lr': SchedLin(1e-3, 1e-2)}) over one epoch of n batches gives
    1e-3 + (1e-2 - 1e-3) * i / n."""
    opt = make_opt(lrs=(1e-2,))
    cfg = {**scheduler_cfg("phases"), "phases": [{"shape": "linear", "start": 0.1, "end": 1.0}]}
    got = [r[0] for r in trace(opt, build_scheduler(cfg, opt, 12, 1), 12)]
    assert got == pytest.approx([1e-3 + (1e-2 - 1e-3) * i / 12 for i in range(12)], rel=1e-12)


def fastai_fine_tune(t: int, spe: int, epochs: int, lr: float) -> tuple[float, float]:
    """fastai's fine_tune(epochs, base_lr=lr): fit_one_cycle(1, lr, pct_start=0.99), then
    fit_one_cycle(epochs, lr / 2, pct_start=0.3, div=5); (lr, momentum) of step t."""
    if t < spe:
        pos = t / spe
        return (
            fastai_combined_cos(0.99, lr / 25, lr, lr / 1e5)(pos),
            fastai_combined_cos(0.99, 0.95, 0.85, 0.95)(pos),
        )
    pos, half = (t - spe) / (epochs * spe), lr / 2
    return (
        fastai_combined_cos(0.3, half / 5, half, half / 1e5)(pos),
        fastai_combined_cos(0.3, 0.95, 0.85, 0.95)(pos),
    )


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_fine_tune_config_is_fastai_fine_tune(make_cfg, kind):
    spe = 10
    opt = make_opt(kind=kind, lrs=(2e-3, 2e-5))  # head, and a group at lr / lr_mult=100
    sched = build_scheduler(make_cfg("scheduler=fine_tune").scheduler, opt, spe, 5)
    got = trace(opt, sched, 5 * spe)
    for t, row in enumerate(got):
        lr, mom = fastai_fine_tune(t, spe, 4, 2e-3)
        assert row[0] == pytest.approx(lr, rel=1e-9), t
        assert row[1] == pytest.approx(lr / 100, rel=1e-9), t  # slice(lr/2/lr_mult, lr/2)
        assert row[2] == pytest.approx(mom, rel=1e-9), t
    assert got[spe][0] == pytest.approx(2e-4)  # the second fit starts at lr / 2 / div


# --- the built-in schedules as phases, step by step


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("strategy, shape", [("cos", "cos"), ("linear", "linear")])
@pytest.mark.parametrize("n, pct", [(21, 0.3), (40, 0.25), (9, 0.5)])
def test_phases_with_torch_convention_equal_onecycle(kind, strategy, shape, n, pct):
    """torch's OneCycleLR, lr and momentum: two phases, convention torch."""
    ref_opt = make_opt(kind)
    ref = tls.OneCycleLR(
        ref_opt, max_lr=0.1, total_steps=n, pct_start=pct, anneal_strategy=strategy
    )
    expected = trace(ref_opt, ref, n, stepper=lambda t: t < n - 1 and ref.step())
    cfg = {
        **scheduler_cfg("phases"),
        "convention": "torch",
        "phases": [
            {"pct": pct, "shape": shape, "start": 1 / 25, "end": 1.0},
            {"shape": shape, "start": 1.0, "end": 1 / 25 / 1e4},
        ],
        "params": {
            "momentum": {
                **scheduler_cfg("phases"),
                "convention": "torch",
                "phases": [
                    {"pct": pct, "shape": shape, "start": 0.95, "end": 0.85},
                    {"shape": shape, "start": 0.85, "end": 0.95},
                ],
            }
        },
    }
    opt = make_opt(kind)
    assert_traces_close(trace(opt, build_scheduler(cfg, opt, n, 1), n), expected)


@pytest.mark.parametrize("spe, epochs", [(7, 3), (10, 4), (13, 1)])
def test_phases_equal_flat_cos(spe, epochs):
    flat_opt, opt = make_opt(), make_opt()
    expected = trace(
        flat_opt, build_scheduler(scheduler_cfg("flat_cos"), flat_opt, spe, epochs), spe * epochs
    )
    cfg = {
        **scheduler_cfg("phases"),
        "phases": [
            {"pct": 0.75, "shape": "const", "start": 1.0},
            {"shape": "cos", "start": 1.0, "end": 1e-5},
        ],
    }
    assert_traces_close(trace(opt, build_scheduler(cfg, opt, spe, epochs), spe * epochs), expected)


@pytest.mark.parametrize("warmup, factor, eta", [(1, 0.1, 0.0), (0.5, 0.0, 0.002), (2, 0.25, 0.01)])
def test_phases_equal_warmup_then_cosine(warmup, factor, eta):
    spe, epochs = 8, 4  # every warmup a whole number of steps (the built-in rounds it)
    ref_opt, opt = make_opt(), make_opt()
    builtin = {
        **scheduler_cfg("cosine"),
        "eta_min": eta,
        "warmup_epochs": warmup,
        "warmup_start_factor": factor,
    }
    expected = trace(ref_opt, build_scheduler(builtin, ref_opt, spe, epochs), spe * epochs)
    cfg = {
        **scheduler_cfg("phases"),
        "phases": [
            {"epochs": warmup, "shape": "linear", "start": factor, "end": 1.0},
            {"shape": "cos", "start": 1.0, "end": eta / 0.1},
        ],
    }
    assert_traces_close(trace(opt, build_scheduler(cfg, opt, spe, epochs), spe * epochs), expected)


def test_a_warmup_before_phases_counts_their_lengths_after_it():
    opt = make_opt()
    cfg = {
        **scheduler_cfg("phases"),
        "warmup_epochs": 1,
        "phases": [
            {"epochs": 1, "shape": "const", "start": 1.0},
            {"epochs": 1, "shape": "const", "start": 0.5},
        ],
    }
    lrs = [r[0] for r in trace(opt, build_scheduler(cfg, opt, 4, 3), 12)]
    assert lrs[4:] == pytest.approx([0.1] * 4 + [0.05] * 4)


def test_epoch_boundaries_fall_on_their_step():
    """0.99 + 0.01 epochs end exactly on step 10 (10 steps per epoch): the next phase starts
    there, not one step later."""
    f = phases(
        {"epochs": 0.99, "shape": "const", "start": 1.0},
        {"epochs": 0.01, "shape": "const", "start": 2.0},
        {"shape": "const", "start": 3.0},
        n=30,
        run_epochs=3,  # in floating point 30 * (0.99 / 3 + 0.01 / 3) is 10.000000000000002
    )
    assert [f(t) for t in (9, 9.95, 10, 11)] == [1.0, 2.0, 3.0, 3.0]


# --- errors: one line naming the key


@pytest.mark.parametrize(
    "phases_cfg, match",
    [
        ([{"pct": 0.3}, {"pct": 0.5}], "scheduler.phases: the lengths add up to 0.8, not 1"),
        ([{"pct": 0.7}, {"pct": 0.5}], "add up to 1.2, not 1"),
        ([{"pct": 0.6}, {"pct": 0.4}, {}], "leaving nothing for the rest"),
        ([{"pct": -0.2}, {}], "scheduler.phases[0].pct=-0.2: must be in (0, 1]"),
        ([{"epochs": -1}, {}], "scheduler.phases[0].epochs=-1: must be a number of epochs > 0"),
        ([{"start": -0.1}], "scheduler.phases[0].start=-0.1: must be a number >= 0"),
        ([{"shape": "cosine"}], "scheduler.phases[0].shape='cosine': must be linear | cos"),
        (
            [{"shape": "exp", "start": 0.0}],
            "scheduler.phases[0]: shape exp needs start and end > 0",
        ),
        ([{"shape": "poly", "power": 0}], "scheduler.phases[0].power=0: must be > 0"),
        ([{"pct": 0.5, "epochs": 1}, {}], "scheduler.phases[0]: give its length as pct or epochs"),
        ([{}, {}], "phases [0, 1] have no length"),
        ([{"lenght": 0.5}], "scheduler.phases[0].lenght is not a key of a phase"),
        ([], "scheduler.phases=[]: must be a non-empty list"),
        (
            [{"epochs": 2}, {"epochs": 2}],
            "the lengths add up to 4 of the run's 3 epochs, not the run's 3",
        ),
        ([{"epochs": 3}, {}], "the lengths add up to 3 of the run's 3 epochs, leaving nothing"),
    ],
)
def test_bad_phases_are_one_line_errors(phases_cfg, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as err:
        build_scheduler({**scheduler_cfg("phases"), "phases": phases_cfg}, make_opt(), 7, 3)
    assert "\n" not in str(err.value)


def test_bad_convention_and_errors_name_where_the_schedule_is():
    with pytest.raises(
        ConfigError, match=re.escape("scheduler.convention='numpy': must be fastai")
    ):
        build_scheduler({**scheduler_cfg("phases"), "convention": "numpy"}, make_opt(), 7, 3)
    bad = {**scheduler_cfg("phases"), "phases": [{"epochs": 5}]}
    with pytest.raises(
        ConfigError, match=re.escape("optimizer_switch.scheduler.phases: the lengths")
    ):
        build_scheduler(bad, make_opt(), 7, 3, where="optimizer_switch.scheduler")
