"""LR range test: schedule, smoothing, fastai's four suggestions on hand-made curves, early
stopping, the exact restore, and find_lr.py end to end."""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrlab import lr_finder
from lrlab.errors import ConfigError
from lrlab.lr_finder import LrFindConfig
from lrlab.lr_finder.range_test import SmoothedLoss
from lrlab.lr_finder.suggestions import minimum, slide, steep, valley
from lrlab.optim.optimizer import set_peak_lr
from lrlab.tasks.build import PLACEHOLDER_LR
from lrlab.tasks.find_lr import find_auto_lr

ROOT = Path(__file__).resolve().parents[2]


# --- schedule and smoothing -------------------------------------------------------------------


def test_exp_schedule_hits_both_ends_with_constant_ratio() -> None:
    lrs = lr_finder.lr_schedule(1e-3, 10.0, 5, "exp")
    np.testing.assert_allclose(lrs, [1e-3, 1e-2, 1e-1, 1.0, 10.0], rtol=1e-12)


def test_linear_schedule() -> None:
    np.testing.assert_allclose(lr_finder.lr_schedule(1.0, 9.0, 5, "linear"), [1, 3, 5, 7, 9])


def test_smoothing_is_bias_corrected_ema() -> None:
    s = SmoothedLoss(beta=0.5)
    # avg1 = 0.5*2 = 1 -> 1/(1-0.5) = 2; avg2 = 0.5*1 + 0.5*4 = 2.5 -> 2.5/(1-0.25)
    assert s.update(2.0) == pytest.approx(2.0)
    assert s.update(4.0) == pytest.approx(2.5 / 0.75)
    # the first smoothed value equals the first loss whatever beta is (bias correction)
    assert SmoothedLoss(0.98).update(3.7) == pytest.approx(3.7)


# --- suggestions on hand-made curves ----------------------------------------------------------


def log_lrs(n: int) -> np.ndarray:
    return lr_finder.lr_schedule(1e-6, 1.0, n, "exp")


def test_valley_is_past_the_middle_of_the_longest_decreasing_run() -> None:
    # 0-9: low and rising (cannot start a decreasing subsequence into the valley),
    # 10-39: strictly decreasing, 3.0 -> 1.55 (30 points), 40-49: rising from 2.0.
    # A decreasing subsequence that leaves the valley for the rising tail takes one tail point
    # after the valley points above 2.0 (20 of them): 21 < 30. So L = 30 ending at 39,
    # fastai's start = 39 - 30 = 9, and the pick is 9 + int(30/3) + int(10/2) = 24.
    losses = np.concatenate(
        [0.1 + 0.01 * np.arange(10), 3.0 - 0.05 * np.arange(30), 2.0 + 0.1 * np.arange(10)]
    )
    lrs = log_lrs(50)
    assert valley(lrs, losses) == lrs[24]


def test_valley_of_a_flat_or_rising_curve_is_its_first_point() -> None:
    lrs = log_lrs(10)
    assert valley(lrs, np.linspace(1, 2, 10)) == lrs[0]
    assert valley(lrs, np.ones(10)) == lrs[0]  # ties are not decreasing


def test_slide_stops_where_the_curve_starts_to_bend() -> None:
    # Flat up to 40, then a parabola. np.gradient is 0 up to index 39, 0.01 at 40 (central
    # difference), and 0.04*(i-40) beyond. Windows of 15 slide left from (69, 54) while their
    # end gradients differ by > 0.005; the first window with equal ends is (39, 24), so the
    # last differing window is (40, 25) and the suggestion its left end, lrs[25].
    i = np.arange(70)
    losses = np.where(i <= 40, 1.0, 1.0 + 0.02 * (i - 40.0) ** 2)
    lrs = log_lrs(70)
    assert slide(lrs, losses) == lrs[40 - 15]


def test_slide_keeps_the_first_window_when_its_ends_agree() -> None:
    lrs = log_lrs(30)
    losses = 2.0 - 0.01 * np.arange(30)  # straight line: same gradient everywhere
    assert slide(lrs, losses) == lrs[30 - 1 - 15]
    assert slide(lrs[:15], losses[:15]) is None  # fastai needs lr_diff+1 points


def test_minimum_is_a_tenth_of_the_lr_at_the_lowest_loss() -> None:
    lrs = log_lrs(20)
    losses = (np.arange(20) - 13.0) ** 2 + 1.0  # lowest at 13
    assert minimum(lrs, losses) == pytest.approx(lrs[13] / 10)


def test_steep_measures_the_slope_against_log_lr() -> None:
    # Drops: 1.0 over a 100x lr step (slope -1/ln 100 = -0.217) between points 1 and 2, and
    # 0.5 over a 1.1x step (slope -0.5/ln 1.1 = -5.2) between points 3 and 4. Per index the
    # first is steeper; against log(lr) the second is, so steep picks lrs[3].
    lrs = np.array([1e-4, 2e-4, 2e-2, 3e-2, 3.3e-2, 5e-2])
    losses = np.array([3.0, 3.0, 2.0, 2.0, 1.5, 1.5])
    assert steep(lrs, losses) == lrs[3]


def test_suggest_drops_first_tenth_and_last_five_and_cuts_at_nan() -> None:
    num_it = 40
    lrs = log_lrs(num_it)
    losses = np.full(num_it, 5.0)
    losses[2] = 0.1  # the lowest loss, but in the first num_it//10 = 4 points: ignored
    losses[36] = 0.2  # in the last 5: ignored
    losses[20] = 1.0  # lowest inside the window
    got = lr_finder.suggest(lrs, losses, num_it)
    assert got["minimum"] == pytest.approx(lrs[20] / 10)
    # a NaN at 15 cuts the curve there: the minimum is searched in [4, 15)
    losses[15] = math.nan
    losses[9] = 2.0
    assert lr_finder.suggest(lrs, losses, num_it)["minimum"] == pytest.approx(lrs[9] / 10)
    w_lrs, w_losses = lr_finder.suggestion_window(lrs, losses, num_it)
    np.testing.assert_array_equal(w_lrs, lrs[4:15])
    np.testing.assert_array_equal(w_losses, losses[4:15])
    assert set(got) == {"valley", "slide", "minimum", "steep"}


def test_suggest_on_a_too_short_curve_gives_none_not_an_error() -> None:
    got = lr_finder.suggest(log_lrs(7), np.linspace(3, 1, 7), num_it=100)
    assert got == dict.fromkeys(["valley", "slide", "minimum", "steep"])


# --- the loop: lrs applied, early stop --------------------------------------------------------


def scripted(losses: list[float], seen_lrs: list[list[float]], optimizer: torch.optim.Optimizer):
    """A step_fn that reports a fixed loss sequence and records the lrs it was called with."""
    it = iter(losses)

    def step(batches: list) -> float:
        seen_lrs.append([g["lr"] for g in optimizer.param_groups])
        return next(it)

    return step


def two_group_sgd() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    # group 1 runs at 10x the optimizer's own lr (as a layer-wise setup would)
    opt = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 1.0}], lr=0.1
    )
    return model, opt


def test_loop_sets_scheduled_lrs_keeping_group_ratios_then_restores_them() -> None:
    model, opt = two_group_sgd()
    seen: list[list[float]] = []
    loader = [0, 1, 2]  # shorter than num_it: cycled
    res = lr_finder.range_test(
        model, opt, loader, scripted([1.0] * 6, seen, opt), start_lr=1e-4, end_lr=1e1, num_it=6
    )
    expected = 1e-4 * 10 ** np.arange(6)
    np.testing.assert_allclose(res.lrs, expected)
    np.testing.assert_allclose([s[0] for s in seen], expected)
    np.testing.assert_allclose([s[1] for s in seen], 10 * expected)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert not res.stopped_early and len(res.raw_losses) == 6


def test_loop_cycles_the_loader_and_groups_accumulated_batches() -> None:
    model, opt = two_group_sgd()
    got: list[list] = []

    def step(batches: list) -> float:
        got.append(batches)
        return 1.0

    lr_finder.range_test(model, opt, [0, 1, 2], step, num_it=4, accumulate_grad_batches=2)
    assert got == [[0, 1], [2, 0], [1, 2], [0, 1]]


def test_stops_when_smoothed_loss_exceeds_threshold_times_best() -> None:
    # beta=0: smoothed == raw. Best is 1; 4.0 is not > 4*1, 5.0 is: stop there, keeping it.
    losses = [2.0, 1.0, 1.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    model, opt = two_group_sgd()
    res = lr_finder.range_test(
        model, opt, [0], scripted(losses, [], opt), num_it=10, smooth_beta=0.0
    )
    assert res.stopped_early and res.stop_reason == "diverged"
    assert res.raw_losses == losses[:6]
    assert len(res.lrs) == 6
    # a higher threshold or stop_div=false runs all steps
    model, opt = two_group_sgd()
    res = lr_finder.range_test(
        model, opt, [0], scripted(losses, [], opt), num_it=10, smooth_beta=0.0, stop_div=False
    )
    assert not res.stopped_early and len(res.lrs) == 10
    model, opt = two_group_sgd()
    res = lr_finder.range_test(
        model,
        opt,
        [0],
        scripted(losses, [], opt),
        num_it=10,
        smooth_beta=0.0,
        diverge_threshold=8.5,
    )
    assert res.stopped_early and res.raw_losses[-1] == 9.0


def test_default_smoothing_rides_out_a_single_spike() -> None:
    # Once the EMA has history, one 50x spike moves the smoothed loss to ~2.4x best: no stop.
    losses = [1.0] * 60 + [50.0] + [1.0] * 9
    model, opt = two_group_sgd()
    res = lr_finder.range_test(model, opt, [0], scripted(losses, [], opt), num_it=70)
    assert not res.stopped_early and len(res.lrs) == 70
    # after k ones the EMA is 1 - 0.98**k; then the spike enters with weight 0.02
    ema = 0.98 * (1 - 0.98**60) + 0.02 * 50
    assert res.smoothed_losses[60] == pytest.approx(ema / (1 - 0.98**61))
    assert 2 < res.smoothed_losses[60] < 4
    # without smoothing the same spike stops the test at once
    model, opt = two_group_sgd()
    res = lr_finder.range_test(
        model, opt, [0], scripted(losses, [], opt), num_it=70, smooth_beta=0.0
    )
    assert res.stopped_early and len(res.lrs) == 61


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_even_with_stop_div_off(bad: float) -> None:
    model, opt = two_group_sgd()
    res = lr_finder.range_test(
        model, opt, [0], scripted([1.0, 1.0, bad, 1.0], [], opt), num_it=4, stop_div=False
    )
    assert res.stopped_early and res.stop_reason == "non-finite" and len(res.lrs) == 3
    blob = json.loads(json.dumps(res.to_json()))  # strict JSON: NaN/inf written as null
    assert blob["losses"]["raw"][2] is None


# --- exact restore on a real model ------------------------------------------------------------


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 6 * 6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def real_step(model: nn.Module, opt: torch.optim.Optimizer):
    def step(batches: list) -> torch.Tensor:
        opt.zero_grad()
        total = 0.0
        for x, y in batches:
            loss = nn.functional.cross_entropy(model(x), y) / len(batches)
            loss.backward()
            total += loss.detach()
        opt.step()
        return total

    return step


def assert_same(a, b, path: str = "") -> None:
    """Recursive equality where every tensor must be torch.equal (dtype and device too)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.device == b.device, path
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b, path


def test_restores_model_optimizer_grads_modes_rng_and_shuffling_exactly() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(40, 1, 6, 6), torch.randint(0, 3, (40,))
    loader = DataLoader(
        TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(1)
    )
    model = TinyNet()
    opt = torch.optim.AdamW(
        [{"params": model.features.parameters(), "lr": 1e-4}, {"params": model.head.parameters()}],
        lr=1e-3,
        weight_decay=0.1,
    )
    step = real_step(model, opt)
    for batch in list(loader)[:2]:  # real optimizer state (moments, step counts) and grads
        step([batch])
    model.features[1].eval()  # a mixed train/eval state must come back as it was

    def snapshot() -> dict:
        return {
            "model": {k: v.clone() for k, v in model.state_dict().items()},
            "grads": [p.grad.clone() for p in model.parameters()],
            "modes": [m.training for m in model.modules()],
            "opt": copy.deepcopy(opt.state_dict()),
            "torch_rng": torch.get_rng_state(),
            "np_rng": np.random.get_state()[1].copy(),
            "py_rng": random.getstate(),
            "loader_gen": loader.generator.get_state(),
        }

    before = snapshot()
    changed = []

    def watching_step(batches: list) -> torch.Tensor:
        loss = step(batches)
        changed.append(not torch.equal(model.head[2].weight, before["model"]["head.2.weight"]))
        np.random.rand()  # a step that draws from numpy/python RNGs must not leak either
        random.random()
        return loss

    res = lr_finder.range_test(model, opt, loader, watching_step, num_it=12, stop_div=False)
    assert len(res.lrs) == 12 and all(changed)  # the test really trained the model
    assert_same(before, snapshot())
    # the next epoch sees the same shuffled order it would have seen without the test
    first_x = next(iter(loader))[0]
    gen = torch.Generator().manual_seed(1)
    ref = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=gen)
    list(ref)  # the loader had done one pass (list(loader) above) before the test
    assert torch.equal(first_x, next(iter(ref))[0])


def test_restore_happens_even_when_a_step_raises() -> None:
    model, opt = two_group_sgd()
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def exploding(batches: list) -> float:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        lr_finder.range_test(model, opt, [0], exploding, num_it=3)
    assert_same(state, dict(model.state_dict()))
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]


# --- config and lr=auto helpers ---------------------------------------------------------------


def lr_find_cfg(**over) -> LrFindConfig:
    """The lr_find settings of the composed default config, with `over` changed (checked)."""
    from omegaconf import OmegaConf

    from tests.helpers import compose_cfg

    base = compose_cfg([], ROOT / "unused").lr_find
    return OmegaConf.to_object(OmegaConf.merge(base, over))


def loss_step(step):
    """A `TrainStep` as the range test's mean-loss step function."""

    def mean_loss(batches):
        result = step(batches)
        return result.loss_sum / result.n

    return mean_loss


def test_default_config_is_valid_and_matches_the_issue() -> None:
    kw = lr_find_cfg().range_test_kwargs()
    assert kw == {
        "start_lr": 1e-7,
        "end_lr": 10.0,
        "num_it": 100,
        "mode": "exp",
        "smooth_beta": 0.98,
        "stop_div": True,
        "diverge_threshold": 4.0,
    }
    assert lr_find_cfg().suggestion == "valley"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("start_lr", 0),
        ("end_lr", 1e-8),
        ("num_it", 1),
        ("mode", "cosine"),
        ("smooth_beta", 1.0),
        ("diverge_threshold", 0.5),
        ("suggestion", "middle"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(key: str, value) -> None:
    with pytest.raises(ConfigError, match=f"lr_find.{key}"):
        lr_find_cfg(**{key: value})


def test_set_peak_lr_scales_every_group_and_initial_lr() -> None:
    _, opt = two_group_sgd()
    torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)  # stamps initial_lr
    set_peak_lr(opt, 0.02)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.02, 0.2])
    assert [g["initial_lr"] for g in opt.param_groups] == pytest.approx([0.02, 0.2])
    assert opt.defaults["lr"] == 0.02


# --- from the config: find_lr.py ----------------------------------------------------------------


# --- mixed precision and optimizer.lr=auto through the training step ----------------------------


def tiny_setup(precision: str = "32"):
    from lrlab.engine.step import TrainStep

    torch.manual_seed(0)
    x, y = torch.randn(48, 1, 6, 6), torch.randint(0, 3, (48,))
    loader = DataLoader(
        TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(3)
    )
    model = TinyNet()
    opt = torch.optim.SGD(
        [
            {"params": model.features.parameters(), "lr": PLACEHOLDER_LR / 10},
            {"params": model.head.parameters()},
        ],
        lr=PLACEHOLDER_LR,
        momentum=0.9,
    )
    return model, opt, loader, TrainStep(model, opt, torch.device("cpu"), precision)


def test_fp16_grad_scaler_state_is_restored_too() -> None:
    model, opt, loader, step = tiny_setup("16-mixed")
    assert step.scaler.is_enabled()
    step([next(iter(loader))])  # the scaler's scale and growth tracker now exist
    before = copy.deepcopy(step.scaler.state_dict())
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    res = lr_finder.range_test(
        model,
        opt,
        loader,
        loss_step(step),
        num_it=20,
        start_lr=1e-3,
        end_lr=1e4,
        stop_div=False,
        extra_state=[step.scaler],
    )
    assert len(res.lrs) > 3 and step.scaler.state_dict() == before
    assert_same(weights, dict(model.state_dict()))


def test_resolve_auto_lr_sets_the_chosen_lr_on_every_group_and_records_it(tmp_path) -> None:

    model, opt, loader, step = tiny_setup()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    settings = lr_find_cfg(num_it=30, suggestion="minimum")
    entry = find_auto_lr(settings, model, opt, loader, step, 1, tmp_path)
    lr = entry["lr"]
    blob = json.loads((tmp_path / "lr_find.json").read_text())
    assert entry == {"suggestion": "minimum", "lr": lr} and lr == blob["suggestions"]["minimum"]
    assert (tmp_path / "lr_find.png").is_file()
    # the head group gets exactly the found lr, the other keeps its 1/10 ratio
    assert opt.param_groups[1]["lr"] == lr and opt.defaults["lr"] == lr
    assert opt.param_groups[0]["lr"] == pytest.approx(lr / 10, rel=1e-12)
    assert_same(weights, dict(model.state_dict()))
    assert opt.state_dict()["state"] == {}  # no momentum buffers left from the test
    # a suggestion that cannot be computed is a clear error, not a silent default
    settings = lr_find_cfg(num_it=10, suggestion="slide")
    with pytest.raises(ConfigError, match="lr_find.suggestion='slide' found no lr"):
        find_auto_lr(settings, model, opt, loader, step, 1, tmp_path)


def test_train_mode_hook_replaces_model_train() -> None:
    model, opt, loader, step = tiny_setup()
    bn = model.features[1]

    def frozen_bn_train_mode() -> None:  # as Freezer.train_mode with a frozen BatchNorm
        model.train()
        bn.eval()

    modes: list[tuple[bool, bool]] = []

    def watching(batches: list) -> torch.Tensor:
        modes.append((model.head.training, bn.training))
        return loss_step(step)(batches)

    lr_finder.range_test(model, opt, loader, watching, num_it=3, train_mode=frozen_bn_train_mode)
    assert modes == [(True, False)] * 3
    lr_finder.range_test(model, opt, loader, watching, num_it=2)
    assert modes[3:] == [(True, True)] * 2
