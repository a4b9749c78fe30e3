"""Start-up work of image folders: the split remembered across runs, the cache decoded on threads."""

from __future__ import annotations

import pytest
import torch

from lrlab import data as data_module
from lrlab.data import CachedImages, build_data, in_threads
from lrlab.errors import ConfigError
from tests.conftest import make_image_folder


@pytest.fixture
def folder(tmp_path):
    # 90 images: above in_threads' 64, so the cache really decodes on the thread pool.
    return make_image_folder(tmp_path / "imgs", {"a": 30, "b": 30, "c": 30})


def build(make_cfg, root, *overrides, out="run"):
    cfg = make_cfg(
        "data=imagefolder", f"data.root={root}", "data.image_size=16", *overrides, out=out
    )
    return cfg, build_data(cfg)


def val_files(bundle) -> list[str]:
    subset = bundle.val_loader.dataset
    return [subset.dataset.samples[i][0] for i in subset.indices]


def test_split_is_remembered_and_keyed_by_the_seed(make_cfg, folder, monkeypatch):
    calls = []
    real = data_module.stratified_split
    monkeypatch.setattr(data_module, "stratified_split", lambda *a: calls.append(a[1:]) or real(*a))
    cfg, first = build(make_cfg, folder, "data.cache_images=false")
    assert len(calls) == 1
    again = build_data(cfg)  # same data dir: the stored split, no scikit-learn
    assert len(calls) == 1 and val_files(again) == val_files(first)
    _, other = build(make_cfg, folder, "data.cache_images=false", "data.split_seed=1")
    assert calls[-1] == (0.2, 1) and val_files(other) != val_files(first)


def test_remembered_split_equals_a_fresh_one(make_cfg, folder):
    cfg, first = build(make_cfg, folder, "data.cache_images=false")
    cfg.paths.data_dir = str(cfg.paths.data_dir) + "_elsewhere"  # no stored split there
    assert val_files(build_data(cfg)) == val_files(first)


def first_batch(loader, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    loader.generator.manual_seed(seed)
    return next(iter(loader))[0]


def test_threaded_cache_equals_decoding_every_epoch(make_cfg, folder):
    _, cached = build(make_cfg, folder, out="cached")
    _, plain = build(make_cfg, folder, "data.cache_images=false", out="plain")
    assert isinstance(cached.val_loader.dataset, CachedImages)
    xa, ya = zip(*cached.val_loader, strict=True)
    xb, yb = zip(*plain.val_loader, strict=True)
    assert torch.equal(torch.cat(ya), torch.cat(yb)) and torch.equal(torch.cat(xa), torch.cat(xb))
    assert torch.equal(first_batch(cached.train_loader, 5), first_batch(plain.train_loader, 5))


def test_threaded_cache_names_an_unreadable_file(make_cfg, folder, monkeypatch):
    (folder / "b" / "broken.png").write_bytes(b"not an image")
    monkeypatch.setattr(data_module, "channel_stats", lambda *a: ([0.5] * 3, [0.25] * 3))
    with pytest.raises(ConfigError, match="broken.png"):
        build(make_cfg, folder)


def test_in_threads_keeps_the_order(monkeypatch):
    monkeypatch.setattr(data_module, "CACHE_DECODE_THREADS", 4)
    items = [str(i) for i in range(1000)]
    assert in_threads(lambda s: int(s) * 2, items) == [2 * i for i in range(1000)]
