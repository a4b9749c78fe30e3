"""data.cache_images: decoded once, the same tensors and random draws as decoding every epoch."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from lrlab.data import folder as data_module
from lrlab.data.cache import CachedImages
from lrlab.errors import ConfigError
from tests.helpers import FLOWERS, build_data_from, make_image_folder, requires_flowers


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
    return build_data_from(
        make_cfg(
            "data=imagefolder",
            f"data.root={root}",
            "data.image_size=16",
            "data.batch_size=4",
            f"data.cache_images={str(cache).lower()}",
            "data.on_device=false",  # the per-sample path's cache (device path: test_device_data)
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
    assert max(min(img.size) for img in cached.train_loader.dataset.images) == 24
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


def test_cached_augmentation_is_seeded_and_equals_uncached(make_cfg, odd_folder):
    # Images of up to 39 px are below cache_short_side, so the cache keeps them as decoded and
    # the same seed must give the uncached pipeline's crops and flips exactly.
    cached = build(make_cfg, odd_folder, "data.cache_short_side=40")
    plain = build(make_cfg, odd_folder, cache=False)
    x, y = all_batches(cached.train_loader, 7)
    x_again, y_again = all_batches(cached.train_loader, 7)
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    x_other, _ = all_batches(cached.train_loader, 8)
    assert not torch.equal(x, x_other)  # the augmentation is random, driven by the seed

    px, py = all_batches(plain.train_loader, 7)
    assert torch.equal(y, py) and torch.equal(x, px)


def test_shrunk_cache_keeps_the_augmentation(make_cfg, odd_folder):
    # With images shrunk to shorter side 16 the crops are resampled from smaller images: close
    # to the uncached ones on average (same boxes and flips), not equal.
    cached = build(make_cfg, odd_folder, "data.cache_short_side=16")
    plain = build(make_cfg, odd_folder, cache=False)
    x, _ = all_batches(cached.train_loader, 7)
    px, _ = all_batches(plain.train_loader, 7)
    x_other, _ = all_batches(plain.train_loader, 8)
    assert not torch.equal(x, px)
    assert (x - px).abs().mean() < 0.5 * (x_other - px).abs().mean()


def test_cache_respects_its_memory_limit(make_cfg, image_folder, caplog):
    # 24 train images stored at 20x20 and 6 val images at 16x16, 4 bytes per pixel in PIL.
    need_gb = (24 * 4 * 20 * 20 + 6 * 4 * 16 * 16) / 1e9
    fits = build(make_cfg, image_folder, f"data.cache_max_gb={need_gb}")
    stored = fits.train_loader.dataset.images + fits.val_loader.dataset.images
    assert sum(4 * img.width * img.height for img in stored) == round(need_gb * 1e9)
    assert all(img.mode == "RGB" for img in stored)
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


@requires_flowers()
@pytest.mark.slow
def test_flowers_cached_equals_uncached(make_cfg):
    cfg = ("data=flowers", f"data.root={FLOWERS}", "data.on_device=false")
    cached = build_data_from(make_cfg(*cfg))
    plain = build_data_from(make_cfg(*cfg, "data.cache_images=false", out="plain"))
    assert isinstance(cached.train_loader.dataset, CachedImages)
    assert torch.equal(next(iter(cached.val_loader))[0], next(iter(plain.val_loader))[0])
    first = []
    for loader in (cached.train_loader, plain.train_loader):
        torch.manual_seed(3)
        loader.generator.manual_seed(3)
        first.append(next(iter(loader))[0])
    assert torch.equal(*first)


def stored_pixels(data) -> list[bytes]:
    return [
        img.tobytes() for img in data.train_loader.dataset.images + data.val_loader.dataset.images
    ]


def test_next_run_reads_the_decoded_images_from_disk(make_cfg, odd_folder, caplog):
    # The second build (same data dir, files and settings) reads what the first stored: the
    # same pixels, modes and sizes, so the same batches for the same seed.
    with caplog.at_level(logging.INFO, logger="lrlab.data"):
        first = build(make_cfg, odd_folder, "data.cache_short_side=24")
    stored = list((odd_folder.parent / "run" / "data" / "image_cache").glob("*.npz"))
    assert len(stored) == 1 and "decoded 24 images (kept in" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lrlab.data"):
        again = build(make_cfg, odd_folder, "data.cache_short_side=24")
    assert f"found 24 decoded images in {stored[0]}" in caplog.text
    # The per-sample loaders read them before any worker forks (one copy, shared).
    assert not callable(again.train_loader.dataset._images)
    assert stored_pixels(again) == stored_pixels(first)
    assert [im.size for im in again.train_loader.dataset.images] == [
        im.size for im in first.train_loader.dataset.images
    ]
    assert all(im.mode == "RGB" for im in again.train_loader.dataset.images)
    x, y = all_batches(again.train_loader, 5)
    fx, fy = all_batches(first.train_loader, 5)
    assert torch.equal(x, fx) and torch.equal(y, fy)


def test_disk_cache_follows_the_files_and_settings(make_cfg, odd_folder):
    cache_dir = odd_folder.parent / "run" / "data" / "image_cache"
    build(make_cfg, odd_folder)
    build(make_cfg, odd_folder, "data.augment=false")  # stored after the val geometry
    assert len(list(cache_dir.glob("*.npz"))) == 2
    changed = odd_folder / "a" / "0.png"
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(changed)  # new size and time
    data = build(make_cfg, odd_folder)
    assert len(list(cache_dir.glob("*.npz"))) == 3
    images = data.train_loader.dataset.images + data.val_loader.dataset.images
    zeros = [im for im in images if not np.asarray(im).any()]
    assert len(zeros) == 1  # the rewritten file's new pixels, not the stored old ones


def test_a_broken_disk_cache_is_decoded_again(make_cfg, odd_folder, caplog):
    first = build(make_cfg, odd_folder)
    (stored,) = (odd_folder.parent / "run" / "data" / "image_cache").glob("*.npz")
    stored.write_bytes(stored.read_bytes()[:100])  # a run killed mid-write elsewhere
    with caplog.at_level(logging.WARNING, logger="lrlab.data"):
        again = build(make_cfg, odd_folder)
    assert f"ignoring {stored}" in caplog.text and "decoding again" in caplog.text
    assert stored_pixels(again) == stored_pixels(first)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lrlab.data"):
        build(make_cfg, odd_folder)  # rewritten whole by the run that decoded
    assert "found 24 decoded images" in caplog.text


def test_disk_cache_off_or_unwritable_still_trains(make_cfg, odd_folder, caplog):
    data_dir = odd_folder.parent / "run" / "data"
    off = build(make_cfg, odd_folder, "data.cache_on_disk=false")
    assert isinstance(off.train_loader.dataset, CachedImages)
    assert not (data_dir / "image_cache").exists()
    (data_dir / "image_cache").write_text("a file where the folder would go")
    with caplog.at_level(logging.WARNING, logger="lrlab.data"):
        blocked = build(make_cfg, odd_folder)
    assert "could not cache the decoded images at" in caplog.text
    assert stored_pixels(blocked) == stored_pixels(off)


def device_build(make_cfg, root, *overrides):
    return build(make_cfg, root, "data.on_device=true", *overrides)


def test_device_path_keeps_its_stacks_on_disk(make_cfg, odd_folder, caplog):
    # The device path's uint8 stacks (train: centre squares for the random crop) are kept
    # beside the decoded pixels; the next run takes them from there without reading a single
    # image, and trains on the same tensors.
    first = device_build(make_cfg, odd_folder)
    cache_dir = odd_folder.parent / "run" / "data" / "image_cache"
    names = sorted(p.name.split(".", 1)[1] for p in cache_dir.iterdir())
    assert names == ["npz", "train.square16.npy", "val.stack.npy"]
    again = device_build(make_cfg, odd_folder)
    for split in ("train_loader", "val_loader"):
        stored, kept = getattr(first, split).data, getattr(again, split).data
        assert torch.equal(stored.images, kept.images) and torch.equal(stored.labels, kept.labels)
        assert callable(getattr(again, split).source._images)  # no image was read
    x, y = all_batches(again.train_loader, 4)
    fx, fy = all_batches(first.train_loader, 4)
    # Pickled (for spawned workers) with its images, read then.
    source = pickle.loads(pickle.dumps(again.val_loader.source))
    assert [im.tobytes() for im in source.images] == [
        im.tobytes() for im in first.val_loader.source.images
    ]
    assert torch.equal(x, fx) and torch.equal(y, fy)
    # A stack of other images (here: the wrong number) is made again, with a warning.
    (square,) = cache_dir.glob("*.square16.npy")
    np.save(square, np.zeros((3, 3, 16, 16), np.uint8))
    with caplog.at_level(logging.WARNING, logger="lrlab.data"):
        remade = device_build(make_cfg, odd_folder)
    assert f"ignoring {square}" in caplog.text
    assert torch.equal(remade.train_loader.data.images, first.train_loader.data.images)
    assert np.load(square).shape == tuple(first.train_loader.data.images.shape)
