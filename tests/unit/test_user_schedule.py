"""A user's schedule defined here, outside src/lrlab, used by `_target_` with no edit of lrlab:
its values (torch's PolynomialLR), lrlab's warmup and param-group keys on it, exact resume, and
its own checks as one-line errors naming the config key."""

from __future__ import annotations

import io
import re

import pytest
import torch
from torch.optim import lr_scheduler as tls

from lrlab.errors import ConfigError
from lrlab.optim import build_scheduler, check_scheduler
from lrlab.optim.schedules import Plan, Schedule, number
from tests.unit.test_schedules import assert_traces_close, make_opt, trace


class Polynomial(Schedule):
    """lr = peak * (1 - t / steps) ** power: torch's PolynomialLR over the whole run."""

    def __init__(self, power: float) -> None:
        self.power = number("power", power, "> 0")

    def curve(self, plan: Plan):
        n, power = plan.steps, self.power
        return lambda t: (1 - t / n) ** power


SPE, EPOCHS = 6, 3
TOTAL = SPE * EPOCHS
CFG = {"_target_": f"{__name__}.Polynomial", "power": 2.0}


def test_a_users_schedule_trains_value_for_value():
    ref_opt, opt = make_opt(lrs=(0.1, 0.01)), make_opt(lrs=(0.1, 0.01))
    expected = trace(ref_opt, tls.PolynomialLR(ref_opt, total_iters=TOTAL, power=2.0), TOTAL)
    got = trace(opt, build_scheduler(CFG, opt, SPE, EPOCHS), TOTAL + 4)
    assert_traces_close(got[:TOTAL], expected)
    assert got[TOTAL:] == [got[TOTAL - 1]] * 4  # lrlab holds its last planned value


def test_lrlab_warms_it_up_and_schedules_other_keys_with_it():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.1, weight_decay=0.01)
    cfg = {**CFG, "warmup_epochs": 1, "warmup_start_factor": 0.5, "params": {"weight_decay": CFG}}
    sched = build_scheduler(cfg, opt, SPE, EPOCHS)
    lrs, wds = [], []
    for _ in range(TOTAL):
        lrs.append(opt.param_groups[0]["lr"])
        wds.append(opt.param_groups[0]["weight_decay"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.05 and lrs[SPE] == 0.1  # warmup from half the first value, then the curve
    assert lrs[SPE + 1] == pytest.approx(0.1 * (1 - 1 / (TOTAL - SPE)) ** 2)
    assert wds[3] == pytest.approx(0.01 * (1 - 3 / TOTAL) ** 2)  # over the whole run
    assert sched.param_values() == {"weight_decay": opt.param_groups[0]["weight_decay"]}


def test_it_resumes_exactly():
    cfg = {**CFG, "warmup_epochs": 0.5}
    opt = make_opt()
    full = trace(opt, build_scheduler(cfg, opt, SPE, EPOCHS), TOTAL)
    opt_a = make_opt()
    sched_a = build_scheduler(cfg, opt_a, SPE, EPOCHS)
    first = trace(opt_a, sched_a, 7)
    buf = io.BytesIO()
    torch.save(sched_a.state_dict(), buf)
    buf.seek(0)
    opt_b = make_opt()
    sched_b = build_scheduler(cfg, opt_b, SPE, EPOCHS)
    sched_b.load_state_dict(torch.load(buf, weights_only=True))
    assert first + trace(opt_b, sched_b, TOTAL - 7) == full


@pytest.mark.parametrize("where", ["scheduler", "optimizer_switch.scheduler"])
def test_its_bad_values_are_one_line_errors_naming_the_key(where):
    with pytest.raises(ConfigError, match=re.escape(f"{where}.power=-1: must be > 0")) as err:
        check_scheduler({**CFG, "power": -1}, where)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=re.escape("scheduler.params.momentum.power='x'")):
        build_scheduler({**CFG, "params": {"momentum": {**CFG, "power": "x"}}}, make_opt(), 6, 3)
