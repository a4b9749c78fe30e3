"""data.cache_images: decoded once, same tensors and random draws as decoding every epoch."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from lrlab import data as data_module
from lrlab.data import CachedImages, build_data
from lrlab.errors import ConfigError
from tests.conftest import make_image_folder


@pytest.fixture
def odd_folder(tmp_path):
    """Non-square images of several sizes, so resize, center crop and the cache's shrinking
    all do real work (image_size 16, cache_short_side 24)."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(["a", "b", "c"]):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in range(8):
            h, w = int(rng.integers(18, 40)), int(rng.integers(18, 40))
            pixels = rng.integers(0, 256, (h, w, 3)).astype(np.uint8) // (k + 1)
            Image.fromarray(pixels).save(tmp_path / "imgs" / name / f"{i}.png")
    return tmp_path / "imgs"


def build(make_cfg, root, *overrides, cache=True):
    return build_data(
        make_cfg(
            "data=imagefolder",
            f"data.root={root}",
            "data.image_size=16",
            "data.batch_size=4",
            f"data.cache_images={str(cache).lower()}",
            *overrides,
        )
    )


def all_batches(loader, seed: int):
    """One epoch, with the global RNG (transforms) and the loader's generator seeded."""
    torch.manual_seed(seed)
    loader.generator.manual_seed(seed)
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_cache_is_used_and_val_tensors_equal_uncached(make_cfg, odd_folder):
    cached = build(make_cfg, odd_folder, "data.cache_short_side=24")
    plain = build(make_cfg, odd_folder, cache=False)
    assert isinstance(cached.val_loader.dataset, CachedImages)
    assert not isinstance(plain.val_loader.dataset, CachedImages)
    # Stored train images were shrunk to shorter side 24 (or kept when already smaller).
    assert max(min(x.shape[1:]) for x in cached.train_loader.dataset.images) == 24
    vx, vy = zip(*cached.val_loader, strict=True)
    px, py = zip(*plain.val_loader, strict=True)
    assert torch.equal(torch.cat(vy), torch.cat(py))
    assert torch.equal(torch.cat(vx), torch.cat(px))  # bit for bit


def test_unaugmented_train_tensors_equal_uncached(make_cfg, odd_folder):
    cached = build(make_cfg, odd_folder, "data.augment=false")
    plain = build(make_cfg, odd_folder, "data.augment=false", cache=False)
    x, y = all_batches(cached.train_loader, 0)
    px, py = all_batches(plain.train_loader, 0)
    assert torch.equal(y, py) and torch.equal(x, px)


def test_cached_augmentation_is_seeded_and_matches_uncached_draws(make_cfg, image_folder):
    # 20x20 images are below cache_short_side (32), so the cache stores them unchanged and
    # the crop boxes and flips must be the very ones the uncached pipeline draws.
    cached = build(make_cfg, image_folder)
    plain = build(make_cfg, image_folder, cache=False)
    x, y = all_batches(cached.train_loader, 7)
    x_again, y_again = all_batches(cached.train_loader, 7)
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    x_other, _ = all_batches(cached.train_loader, 8)
    assert not torch.equal(x, x_other)  # the augmentation is random, driven by the seed

    px, py = all_batches(plain.train_loader, 7)
    assert torch.equal(y, py)
    # Same draws; PIL's and torch's resampling round a few pixels differently (<= 2 uint8
    # steps on these noise images); another crop box or flip would differ by far more.
    std = torch.tensor(plain.train_loader.dataset.dataset.transform.transforms[-1].std)
    one_step = (1 / 255 / std).max().item()
    assert (x - px).abs().max().item() <= 2 * one_step + 1e-5
    assert (x - px).abs().gt(1e-5).float().mean().item() < 0.1


def test_cache_respects_its_memory_limit(make_cfg, image_folder, caplog):
    # 24 train images stored at 20x20 and 6 val images at 16x16, 3 bytes per pixel.
    need_gb = (24 * 3 * 20 * 20 + 6 * 3 * 16 * 16) / 1e9
    fits = build(make_cfg, image_folder, f"data.cache_max_gb={need_gb}")
    stored = fits.train_loader.dataset.images + fits.val_loader.dataset.images
    assert sum(x.numel() * x.element_size() for x in stored) == round(need_gb * 1e9)
    with caplog.at_level(logging.WARNING, logger="lrlab.data"):
        too_big = build(make_cfg, image_folder, f"data.cache_max_gb={need_gb * 0.99}")
    assert not isinstance(too_big.train_loader.dataset, CachedImages)
    assert "data.cache_max_gb" in caplog.text and "decoding them every epoch" in caplog.text
    assert len(too_big.train_loader.dataset) == 24  # the uncached fallback still works


@pytest.mark.parametrize(
    ("override", "key"),
    [("data.cache_short_side=8", "data.cache_short_side"), ("data.cache_max_gb=0", "cache_max_gb")],
)
def test_bad_cache_settings_name_the_key(make_cfg, image_folder, override, key):
    with pytest.raises(ConfigError, match=key):
        build(make_cfg, image_folder, override)


def test_unreadable_file_is_named_with_the_cache_on(make_cfg, tmp_path):
    root = make_image_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / "a" / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ConfigError, match="bad.jpg"):
        build(make_cfg, root)


def test_truncated_file_is_named_by_the_cache_itself(make_cfg, tmp_path, monkeypatch):
    # A readable header with truncated pixel data passes the size check; the cache's decoding
    # must still name the file. Stats are stubbed so that only the cache reads the pixels.
    root = make_image_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    jpeg = root / "a" / "cut.jpg"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(jpeg)
    jpeg.write_bytes(jpeg.read_bytes()[:300])
    monkeypatch.setattr(data_module, "channel_stats", lambda *a: ([0.5] * 3, [0.25] * 3))
    with pytest.raises(ConfigError, match="cut.jpg"):
        build(make_cfg, root)
