"""Start-up work of image folders: the split is remembered across runs (no scikit-learn import)."""

from __future__ import annotations

from lrlab.data import split as split_module
from tests.helpers import build_data_from, make_image_folder


def build(make_cfg, root, *overrides, out="run"):
    cfg = make_cfg(
        "data=imagefolder", f"data.root={root}", "data.image_size=16", *overrides, out=out
    )
    return cfg, build_data_from(cfg)


def val_files(bundle) -> list[str]:
    subset = bundle.val_loader.dataset
    return [subset.dataset.samples[i][0] for i in subset.indices]


def test_split_is_remembered_and_keyed_by_the_seed(make_cfg, tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "imgs", {"a": 10, "b": 10, "c": 10})
    calls = []
    real = split_module.stratified_split
    monkeypatch.setattr(
        split_module, "stratified_split", lambda *a: calls.append(a[1:]) or real(*a)
    )
    cfg, first = build(make_cfg, folder, "data.cache_images=false")
    assert len(calls) == 1
    again = build_data_from(cfg)  # same data dir: the stored split, no scikit-learn
    assert len(calls) == 1 and val_files(again) == val_files(first)
    _, other = build(make_cfg, folder, "data.cache_images=false", "data.split_seed=1")
    assert calls[-1][:2] == (0.2, 1) and val_files(other) != val_files(first)


def test_remembered_split_equals_a_fresh_one(make_cfg, tmp_path):
    folder = make_image_folder(tmp_path / "imgs", {"a": 10, "b": 10, "c": 10})
    cfg, first = build(make_cfg, folder, "data.cache_images=false")
    cfg.data.stats_dir = str(tmp_path / "elsewhere")  # no stored split there
    assert val_files(build_data_from(cfg)) == val_files(first)
