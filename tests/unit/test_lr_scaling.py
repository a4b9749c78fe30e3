"""`optimizer.lr_scaling`: the peak lr follows the effective batch size."""

from __future__ import annotations

import math
import re

import pytest

from lrlab.errors import ConfigError
from lrlab.optim.optimizer import scaled_peak_lr
from lrlab.tasks.build import build_components
from lrlab.tasks.config import check_config


@pytest.mark.parametrize(
    "rule, batch, accumulate, expected",
    [
        ("linear", 64, 1, 0.1 * 64 / 256),
        ("linear", 64, 4, 0.1),  # 64 x 4 = the reference
        ("sqrt", 64, 1, 0.1 * math.sqrt(64 / 256)),
        ("sqrt", 512, 2, 0.1 * 2.0),
    ],
)
def test_peak_lr_scales_with_batch_size_times_accumulation(rule, batch, accumulate, expected):
    cfg = {"lr": 0.1, "lr_scaling": rule, "reference_batch_size": 256}
    lr, record = scaled_peak_lr(cfg, batch, accumulate)
    assert lr == pytest.approx(expected, rel=1e-12)
    assert record["effective_batch_size"] == batch * accumulate and record["world_size"] == 1
    assert record["lr"] == lr and record["base_lr"] == 0.1 and record["rule"] == rule


def test_none_leaves_the_lr_alone():
    assert scaled_peak_lr({"lr": 0.1}, 64, 1) == (None, None)
    assert scaled_peak_lr({"lr": 0.1, "lr_scaling": "none", "reference_batch_size": 8}, 64, 1) == (
        None,
        None,
    )


def test_data_parallel_processes_count(monkeypatch):
    """The data-parallel processes (torchrun's WORLD_SIZE) multiply the effective batch."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    lr, record = scaled_peak_lr(
        {"lr": 0.1, "lr_scaling": "linear", "reference_batch_size": 256}, 64, 1
    )
    assert lr == pytest.approx(0.1) and record["effective_batch_size"] == 256


def test_build_uses_the_scaled_peak(make_cfg):
    cfg = make_cfg(
        "optimizer=sgd",
        "optimizer.lr_scaling=linear",
        "optimizer.reference_batch_size=256",
        "data.batch_size=32",
        "trainer.accumulate_grad_batches=2",
        "model.lr_mult=10",
    )
    c = build_components(cfg)
    assert c.optimizer.defaults["lr"] == pytest.approx(0.05 * 64 / 256)
    assert c.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 64 / 256)
    assert c.optimizer.param_groups[-1]["lr"] == pytest.approx(0.05 * 64 / 256 / 10)  # ratios kept
    assert c.lr_scaling["factor"] == pytest.approx(0.25)
    assert "lr_scaling" not in c.optimizer.defaults  # lrlab's keys do not reach torch


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optimizer.lr_scaling=cube"], "optimizer.lr_scaling='cube': must be none | linear | sqrt"),
        (["optimizer.lr_scaling=linear"], "optimizer.lr_scaling=linear needs optimizer.reference_batch_size"),
        (["optimizer.reference_batch_size=0"], "optimizer.reference_batch_size=0: must be an integer >= 1"),
        (["optimizer.lr_scaling=sqrt", "optimizer.reference_batch_size=64", "optimizer.lr=auto"],
         "optimizer.lr_scaling=sqrt scales a given lr; with optimizer.lr=auto"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line_errors_before_any_work(make_cfg, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        check_config(make_cfg(*overrides))
    assert "\n" not in str(err.value)


def test_every_optimizer_config_has_the_keys_at_their_defaults(make_cfg):
    from pathlib import Path

    conf = Path(__file__).resolve().parents[2] / "conf" / "optimizer"
    for path in sorted(conf.glob("*.yaml")):
        cfg = make_cfg(f"optimizer={path.stem}")
        assert cfg.optimizer.lr_scaling == "none" and cfg.optimizer.reference_batch_size is None
