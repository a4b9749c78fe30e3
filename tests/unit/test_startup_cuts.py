"""What the default digits run skips at start-up gives the same data: the digits read from
scikit-learn's bundled CSV, the remembered split, no torchvision import without erasing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import lrlab.data.split as split_module
from lrlab.data.augment import random_erasing
from lrlab.data.digits import digits, load_digits
from tests.helpers import build_data_from


def test_digits_read_without_sklearn_equal_sklearns_load_digits():
    from sklearn.datasets import load_digits as sklearn_load_digits

    images, target = load_digits()
    bunch = sklearn_load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == bunch.images.dtype
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(target, bunch.target)
    assert target.dtype == bunch.target.dtype


@pytest.mark.parametrize("test_fraction", [0.0, 0.1])
def test_digits_split_is_remembered_and_equals_the_computed_one(
    tmp_path, monkeypatch, test_fraction
):
    computed = digits(16, 0.2, 0, test_fraction, cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("split_cache/*.json"))) == (2 if test_fraction else 1)

    def refuse(*args, **kwargs):
        raise AssertionError("the split was computed again")

    monkeypatch.setattr(split_module, "stratified_split", refuse)
    remembered = digits(16, 0.2, 0, test_fraction, cache_dir=str(tmp_path))
    assert (computed.test is None) == (remembered.test is None) == (not test_fraction)
    for name in ("train", "val", "test"):
        a, b = getattr(computed, name), getattr(remembered, name)
        for x, y in zip(a.tensors if a else [], b.tensors if b else [], strict=True):
            assert torch.equal(x, y)


def test_digits_without_a_cache_dir_compute_the_split_each_time(monkeypatch):
    calls = []
    real = split_module.stratified_split
    monkeypatch.setattr(
        split_module, "stratified_split", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    first = digits(16, 0.2, 0, cache_dir=None)
    second = digits(16, 0.2, 0, cache_dir=None)
    assert len(calls) == 2 and torch.equal(first.val.tensors[1], second.val.tensors[1])


def test_the_default_digits_config_remembers_its_split_in_the_data_dir(make_cfg):
    cfg = make_cfg()
    assert cfg.data.cache_dir == cfg.paths.data_dir
    build_data_from(cfg)
    assert list(Path(cfg.paths.data_dir).glob("split_cache/*.json"))


def test_no_random_erasing_needs_no_transform():
    assert random_erasing({"random_erasing": 0.0}) == []
    (erase,) = random_erasing({"random_erasing": 0.5})
    assert erase.p == 0.5
