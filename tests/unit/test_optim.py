"""Param groups from timm's layer grouping: differential lrs, no-decay split, schedule ratios."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrlab.errors import ConfigError
from lrlab.models import build_model
from lrlab.optim import build_scheduler, lr_scales
from tests.helpers import build_optimizer_from


def simple_cnn(cfg) -> torch.nn.Module:
    return build_model(cfg.model, num_classes=10, in_channels=1, image_size=16)


def test_lrs_are_fastais_slice_spacing_head_first(make_cfg):
    cfg = make_cfg("optimizer=sgd", "optimizer.lr=0.2", "model.lr_mult=100")
    model = simple_cnn(cfg)  # groups: features.0 (stem), features.1, features.2, classifier
    opt = build_optimizer_from(cfg, model)
    # fastai: slice(lr / lr_mult, lr) -> even_mults, log-spaced from the stem to the head.
    expected = np.geomspace(0.2 / 100, 0.2, 4)[::-1]  # head first
    by_layer = {g["layer_group"]: g["lr"] for g in opt.param_groups}
    np.testing.assert_allclose([by_layer[i] for i in (3, 2, 1, 0)], expected, rtol=1e-12)
    assert opt.param_groups[0]["name"] == "head" and opt.param_groups[0]["lr"] == 0.2
    assert opt.defaults["lr"] == 0.2  # what schedules and the LR finder take as optimizer.lr
    assert {g["name"] for g in opt.param_groups} >= {"stem", "stage1", "stage2", "head"}
    assert [p for g in opt.param_groups for p in g["params"]].__len__() == len(
        list(model.parameters())
    )


def test_layer_groups_are_timms_grouping(make_cfg):
    from timm.models import group_parameters

    cfg = make_cfg("model=timm", "model.name=test_resnet", "model.lr_mult=10")
    model = build_model(cfg.model, num_classes=5, in_channels=3, image_size=32)
    opt = build_optimizer_from(cfg, model)
    timm_groups = group_parameters(model, model.group_matcher(coarse=True), return_values=True)
    n = len(timm_groups)
    assert n == 6  # stem, layer1-4, fc
    for i, params in timm_groups.items():
        mine = [p for g in opt.param_groups if g["layer_group"] == i for p in g["params"]]
        assert {id(p) for p in mine} == {id(p) for p in params}
        assert all(
            math.isclose(g["lr"], cfg.optimizer.lr * 10 ** (-(n - 1 - i) / (n - 1)))
            for g in opt.param_groups
            if g["layer_group"] == i
        )


def test_explicit_lr_scales(make_cfg):
    cfg = make_cfg("optimizer.lr=0.01", "model.lr_scales=[0.1,0.2,0.5,1.0]")
    opt = build_optimizer_from(cfg, simple_cnn(cfg))
    got = {g["layer_group"]: g["lr"] for g in opt.param_groups}
    assert got == pytest.approx({0: 0.001, 1: 0.002, 2: 0.005, 3: 0.01})
    with pytest.raises(ConfigError, match=r"model\.lr_scales=.*4 positive numbers"):
        build_optimizer_from(make_cfg("model.lr_scales=[0.1,1.0]"), simple_cnn(cfg))


def test_no_weight_decay_on_biases_and_norm_weights_like_timm(make_cfg):
    from timm.optim import param_groups_weight_decay

    cfg = make_cfg("model=timm", "model.name=test_vit", "optimizer=adamw")
    model = build_model(cfg.model, num_classes=5, in_channels=3, image_size=32)
    opt = build_optimizer_from(cfg, model)
    no_decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.0 for p in g["params"]}
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.01 for p in g["params"]}
    # timm's own rule (1-d params, biases, model.no_weight_decay()) as the reference.
    ref = param_groups_weight_decay(model, 0.05, no_weight_decay_list=model.no_weight_decay())
    ref_no_decay = {id(p) for g in ref if g["weight_decay"] == 0.0 for p in g["params"]}
    assert no_decay == ref_no_decay
    assert decay | no_decay == {id(p) for p in model.parameters()} and not decay & no_decay
    assert {id(model.pos_embed), id(model.cls_token)} <= no_decay
    assert cfg.optimizer.weight_decay == 0.01

    off_cfg = make_cfg("optimizer=adamw", "model.no_weight_decay_norm_bias=false")
    off = build_optimizer_from(off_cfg, simple_cnn(off_cfg))
    assert all(g["weight_decay"] == 0.01 for g in off.param_groups)


def test_lr_argument_overrides_auto_and_keeps_ratios(make_cfg):
    cfg = make_cfg("optimizer.lr=auto", "model.lr_mult=8")
    model = simple_cnn(cfg)
    with pytest.raises(ConfigError, match=r"optimizer\.lr='auto'"):
        build_optimizer_from(cfg, model)
    opt = build_optimizer_from(cfg, model, lr=0.4)
    assert opt.param_groups[0]["lr"] == 0.4 and opt.defaults["lr"] == 0.4
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(0.4 * g["lr_scale"])


@pytest.mark.parametrize("bad", ["0", "-2"])  # "abc": refused by the schema (test_config)
def test_bad_lr_mult_is_a_config_error(make_cfg, bad):
    cfg = make_cfg(f"model.lr_mult={bad}")
    with pytest.raises(ConfigError, match=r"model\.lr_mult="):
        build_optimizer_from(cfg, simple_cnn(cfg))


def test_lr_scales_single_group_and_even_mults():
    assert lr_scales(1, 100.0) == [1.0]
    np.testing.assert_allclose(lr_scales(3, 100.0), [0.01, 0.1, 1.0])


@pytest.mark.parametrize(
    "scheduler",
    [
        ["scheduler=onecycle"],
        ["scheduler=clr", "scheduler.step_size=0.5"],
        ["scheduler=sgdr", "scheduler.t_0=0.5", "scheduler.eta_min=0.001"],
    ],
    ids=["onecycle", "clr", "sgdr"],
)
def test_group_lrs_keep_their_ratios_at_every_step(make_cfg, scheduler):
    cfg = make_cfg("optimizer=sgd", "optimizer.lr=0.1", "model.lr_mult=20", *scheduler)
    model = simple_cnn(cfg)
    opt = build_optimizer_from(cfg, model)
    # The same schedule on a one-group optimizer: the head must follow it exactly.
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    sched = build_scheduler(cfg.scheduler, opt, steps_per_epoch=6, epochs=3)
    ref = build_scheduler(cfg.scheduler, ref_opt, steps_per_epoch=6, epochs=3)
    head_lrs = []
    for _ in range(18):
        head = opt.param_groups[0]["lr"]
        assert head == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
        for g in opt.param_groups:
            assert g["lr"] == pytest.approx(head * g["lr_scale"], rel=1e-9)
        head_lrs.append(head)
        opt.step()
        ref_opt.step()
        sched.step()
        ref.step()
    assert len(set(np.round(head_lrs, 12))) >= 4  # the schedule really moved the lrs
    assert min(g["lr_scale"] for g in opt.param_groups) == pytest.approx(1 / 20)


def test_param_groups_are_stable_so_checkpoints_resume(make_cfg):
    cfg = make_cfg("optimizer=adamw", "model.lr_mult=4")
    model = simple_cnn(cfg)
    opt = build_optimizer_from(cfg, model)
    model(torch.randn(2, 1, 16, 16)).sum().backward()
    opt.step()
    twin = simple_cnn(cfg)
    twin.load_state_dict(model.state_dict())
    restored = build_optimizer_from(cfg, twin)
    restored.load_state_dict(opt.state_dict())
    assert [g["name"] for g in restored.param_groups] == [g["name"] for g in opt.param_groups]
    for g_old, g_new in zip(opt.param_groups, restored.param_groups, strict=True):
        for p_old, p_new in zip(g_old["params"], g_new["params"], strict=True):
            assert torch.equal(opt.state[p_old]["exp_avg"], restored.state[p_new]["exp_avg"])
