from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from lrlab.data import stratified_split
from lrlab.errors import ConfigError
from lrlab.tasks.config import check_config
from tests.helpers import FLOWERS, build_data_from, make_image_folder, requires_flowers


def test_digits_default_is_real_normalised_and_split(make_cfg):
    data = build_data_from(make_cfg())
    assert (data.num_classes, data.in_channels, data.image_size) == (10, 1, 16)
    x, _y = data.train_loader.dataset.tensors
    vx, _ = data.val_loader.dataset.tensors
    assert len(x) + len(vx) == 1797 and len(vx) == 360
    assert x.shape[1:] == (1, 16, 16)
    # normalised with train statistics only
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    assert abs(vx.mean().item()) < 0.1


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    labels = np.repeat(np.arange(4), [50, 100, 30, 20])
    train, val = stratified_split(labels, 0.2, seed=3)
    assert not set(train) & set(val) and len(train) + len(val) == 200
    assert Counter(labels[val]) == {0: 10, 1: 20, 2: 6, 3: 4}
    assert stratified_split(labels, 0.2, seed=3) == (train, val)
    assert stratified_split(labels, 0.2, seed=4)[1] != val


def test_imagefolder_split_stats_cache_and_shapes(make_cfg, image_folder):
    cfg = make_cfg("data=imagefolder", f"data.root={image_folder}", "data.image_size=16")
    data = build_data_from(cfg)
    assert data.class_names == ["cat", "dog", "fox"] and data.in_channels == 3
    assert len(data.train_loader.dataset) == 24 and len(data.val_loader.dataset) == 6
    x, _y = next(iter(data.val_loader))
    assert x.shape[1:] == (3, 16, 16)
    caches = list(Path(cfg.paths.data_dir, "stats_cache").glob("*.json"))
    assert len(caches) == 1
    # The cache is used: a changed cache value changes the normalisation.
    caches[0].write_text('{"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}')
    x2, _ = next(iter(build_data_from(cfg).val_loader))
    assert x2.min() >= 0 and x2.max() <= 1 and not torch.allclose(x, x2)


def test_imagefolder_separate_val_root(make_cfg, tmp_path):
    train = make_image_folder(tmp_path / "train", {"a": 6, "b": 6})
    val = make_image_folder(tmp_path / "val", {"a": 2, "b": 3}, seed=1)
    data = build_data_from(
        make_cfg("data=imagefolder", f"data.root={train}", f"data.val_root={val}")
    )
    assert len(data.train_loader.dataset) == 12 and len(data.val_loader.dataset) == 5


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "no class subfolders"),
        (lambda root: make_image_folder(root, {"a": 3}) and (root / "empty").mkdir(), "empty"),
        (
            lambda root: (
                make_image_folder(root, {"a": 3, "b": 3})
                and (root / "a" / "bad.jpg").write_bytes(b"not an image")
            ),
            "bad.jpg",
        ),
    ],
    ids=["missing_root", "no_classes", "empty_class", "unreadable_image"],
)
def test_bad_image_folders_raise_a_clear_error(make_cfg, tmp_path, setup, message):
    root = tmp_path / "imgs"
    setup(root)
    with pytest.raises(ConfigError, match=message):
        build_data_from(make_cfg("data=imagefolder", f"data.root={root}"))


def test_imagefolder_without_root_names_the_key(make_cfg):
    with pytest.raises(ConfigError, match="data.root"):
        build_data_from(make_cfg("data=imagefolder"))


def write_fake_cifar(root: Path) -> None:
    """CIFAR-10's python format (pickled dicts of uint8 rows), at a tiny size."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)


def test_cifar10_loads_from_local_files(make_cfg, tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    write_fake_cifar(tmp_path / "cifar")
    # The fake files cannot match torchvision's published md5 sums; everything else is real.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    data = build_data_from(
        make_cfg(
            "data=cifar10",
            f"data.root={tmp_path / 'cifar'}",
            "data.download=false",
            "data.val_size=4",
        )
    )
    assert data.num_classes == 10 and len(data.train_loader.dataset) == 16  # 4 validate
    x, _y = next(iter(data.train_loader))
    assert x.shape[1:] == (3, 32, 32)


def test_cifar10_offline_error_says_what_to_do(make_cfg, tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    def offline(self):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(ConfigError, match="cifar-10-batches-py"):
        build_data_from(make_cfg("data=cifar10", f"data.root={tmp_path / 'none'}"))


@requires_flowers()
def test_flowers_split_is_stratified_20_percent(make_cfg):
    data = build_data_from(make_cfg("data=flowers", f"data.root={FLOWERS}"))
    assert data.class_names == ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    n_val = len(data.val_loader.dataset)
    assert n_val == pytest.approx(0.2 * 4317, abs=3)


def test_stats_cache_is_per_split(make_cfg, image_folder):
    for split_seed in (0, 1):
        build_data_from(
            make_cfg(
                "data=imagefolder", f"data.root={image_folder}", f"data.split_seed={split_seed}"
            )
        )
    cache_dir = Path(make_cfg().paths.data_dir, "stats_cache")
    assert len(list(cache_dir.glob("*.json"))) == 2


def test_a_stats_cache_write_cut_short_leaves_no_half_file(image_folder, tmp_path, monkeypatch):
    """A full disk mid-write (or a parallel sweep job reading meanwhile) must never see a
    half-written statistics file: the next run would fail on its JSON."""
    import errno

    from lrlab.data.stats import channel_stats

    files = sorted(str(f) for f in image_folder.rglob("*.png"))

    class DiskFull:  # the cache writer's file: half of the bytes land, then ENOSPC
        def __init__(self, path, mode):
            self.file = open(path, mode)  # noqa: SIM115

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    with monkeypatch.context() as m:
        m.setattr("lrlab.utils.open", DiskFull, raising=False)
        first = channel_stats(files[:20], files, 16, tmp_path)
    assert list((tmp_path / "stats_cache").iterdir()) == []
    again = channel_stats(files[:20], files, 16, tmp_path)  # computed and cached this time
    assert again == first
    assert [p.suffix for p in (tmp_path / "stats_cache").iterdir()] == [".json"]


def test_imagenet_normalization(make_cfg, image_folder):
    common = [
        "data=imagefolder",
        f"data.root={image_folder}",
        "data.image_size=16",
        "data.augment=false",
    ]
    raw = build_data_from(make_cfg(*common, "data.normalize=dataset", "data.cache_images=false"))
    imagenet = build_data_from(make_cfg(*common, "data.normalize=imagenet"))
    x_raw, _ = next(iter(raw.val_loader))
    x_net, _ = next(iter(imagenet.val_loader))
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    # Undone, ImageNet's normalisation gives back [0, 1] pixels.
    pixels_net = x_net * std[:, None, None] + mean[:, None, None]
    assert pixels_net.min() >= -1e-5 and pixels_net.max() <= 1 + 1e-5
    assert not torch.allclose(x_raw, x_net)
    with pytest.raises(ConfigError, match="data.normalize"):
        check_config(make_cfg(*common, "data.normalize=imagenett"))


def test_worker_seeds_follow_the_loader_generator(make_cfg, image_folder):
    """Restoring the loader's generator replays an epoch exactly, with workers too (resume and
    the LR finder's restore rely on it): workers are re-seeded from it every epoch."""
    data = build_data_from(
        make_cfg(
            "data=imagefolder",
            f"data.root={image_folder}",
            "data.image_size=16",
            "trainer.num_workers=1",
        )
    )
    state = data.train_loader.generator.get_state()
    first = [x for x, _ in data.train_loader]
    data.train_loader.generator.set_state(state)
    again = [x for x, _ in data.train_loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_a_finished_run_ends_its_persistent_worker_processes(make_cfg, image_folder):
    """A sequential sweep's next job must not train beside the last one's loader workers."""
    import gc
    import multiprocessing

    from lrlab.tasks.train import train

    cfg = make_cfg(
        "data=imagefolder",
        f"data.root={image_folder}",
        "data.on_device=false",
        "trainer.num_workers=2",
        "trainer.epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
    )
    gc.collect()
    before = set(multiprocessing.active_children())
    gc.disable()  # a collection would free the run's loaders (and end their workers) by chance
    try:
        summary = train(cfg)
        left = set(multiprocessing.active_children()) - before
    finally:
        gc.enable()
    assert summary["status"] == "completed"
    assert not left, f"{len(left)} loader worker processes outlived the run"
