"""Any optimizer class by `_target_` (timm's included), its arguments checked from its own
signature: unknown keys get "did you mean", wrong types and out-of-range values one line."""

from __future__ import annotations

import re

import pytest
import torch

from lrlab.errors import ConfigError
from lrlab.tasks.build import build_components
from lrlab.tasks.config import check_config


@pytest.mark.parametrize(
    "overrides, target",
    [
        (["optimizer=lion"], "Lion"),
        (["optimizer=lamb"], "Lamb"),
        (["optimizer=adamw", "optimizer._target_=timm.optim.Adan", "optimizer.betas=[0.98,0.92,0.99]",
          "~optimizer.amsgrad"], "Adan"),
    ],
)  # fmt: skip
def test_timm_optimizers_build_and_step(make_cfg, overrides, target):
    cfg = make_cfg(*overrides, "trainer.epochs=1")
    check_config(cfg)
    c = build_components(cfg)
    assert type(c.optimizer).__name__ == target
    assert c.optimizer.defaults["lr"] == cfg.optimizer.lr
    assert c.optimizer.param_groups[0]["lr"] == cfg.optimizer.lr
    batch = next(iter(c.data.train_loader))
    before = [p.detach().clone() for p in c.model.parameters()]
    c.step_fn([batch])
    assert any(not torch.equal(b, p) for b, p in zip(before, c.model.parameters(), strict=True))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optimizer=sgd", "+optimizer.momentun=0.9"],
         "optimizer.momentun is not a key of optimizer; did you mean optimizer.momentum?"),
        (["optimizer=lion", "+optimizer.eps=1e-8"], "optimizer.eps is not a key of optimizer"),
        (["optimizer=sgd", "optimizer.nesterov=flase"], "optimizer.nesterov='flase' must be true or false"),
        (["optimizer=adam", "optimizer.amsgrad=maybe"], "optimizer.amsgrad='maybe' must be true or false"),
        (["optimizer=adamw", "optimizer.weight_decay=-0.01"], "optimizer.weight_decay=-0.01 must be >= 0"),
        (["optimizer=adam", "optimizer.betas=[1.5,0.999]"], "optimizer.betas=[1.5, 0.999] must be in [0, 1) each"),
        (["optimizer=adam", "optimizer.betas=[0.9]"], "optimizer.betas=[0.9] must list 2 numbers"),
        (["optimizer=adam", "optimizer.betas=0.9"], "optimizer.betas=0.9 must list 2 numbers"),
        (["optimizer=lion", "optimizer.betas=[0.9,x]"], "optimizer.betas=[0.9, 'x'] must be a number"),
        (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer.momentum=-1 must be >= 0"),
        (["optimizer=adam", "optimizer.eps=-1"], "optimizer.eps=-1 must be >= 0"),
        (["optimizer=adam", "optimizer.eps=tiny"], "optimizer.eps='tiny' must be a number"),
        (["optimizer=sgd", "optimizer.nesterov=true", "optimizer.momentum=0"],
         "optimizer.nesterov=true needs optimizer.momentum > 0"),
        (["optimizer=sgd", "optimizer.nesterov=true", "optimizer.dampening=0.1"],
         "optimizer.nesterov=true needs optimizer.dampening=0"),
        (["optimizer=adadelta", "optimizer.rho=2"], "optimizer.rho=2 must be in [0, 1]"),
        (["optimizer=lamb", "optimizer.max_grad_norm=big"], "optimizer.max_grad_norm='big' must be a number"),
        (["optimizer._target_=torch.optim.Adamm"], "optimizer._target_='torch.optim.Adamm' cannot be imported: torch.optim has no 'Adamm'; did you mean torch.optim.Adam?"),
        (["seed=-1"], "seed=-1 must be an integer in [0, 2**32)"),
        (["optimizer_switch=adam_to_sgd", "trainer.epochs=8", "optimizer_switch.optimizer.momentum=-0.5"],
         "optimizer_switch.optimizer.momentum=-0.5 must be >= 0"),
    ],
)  # fmt: skip
def test_bad_optimizer_arguments_are_one_line_errors(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        check_config(make_cfg(*overrides))
    assert "\n" not in str(err.value)


def test_null_is_accepted_where_the_signature_allows_it(make_cfg):
    check_config(make_cfg("optimizer=lamb", "optimizer.max_grad_norm=null"))
    with pytest.raises(ConfigError, match=re.escape("optimizer.eps=null: must be set (float)")):
        check_config(make_cfg("optimizer=adam", "optimizer.eps=null"))
