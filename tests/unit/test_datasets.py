"""Train / validation / test splits of every built-in data set, and the torchvision sets
(CIFAR-10/100, MNIST, FashionMNIST) from files written here in torchvision's own on-disk
formats: nothing is downloaded."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lrlab.data import build_data
from lrlab.data.loaders import load_datasets
from lrlab.errors import ConfigError
from tests.helpers import make_image_folder

PER_CLASS = 6  # train images per class in the fake files; test images: 2 per class


def labels_of(n_classes: int, per_class: int) -> list[int]:
    return [c for c in range(n_classes) for _ in range(per_class)]


def write_cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, per_class in (("train", PER_CLASS), ("test", 2)):
        fine = labels_of(100, per_class)
        data = rng.integers(0, 255, (len(fine), 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "fine_labels": fine}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)


def write_idx(folder: Path, prefix: str, per_class: int, rng) -> None:
    """MNIST's idx format: big-endian magic (0x801 labels, 0x803 images) and dimensions."""
    labels = np.array(labels_of(10, per_class), dtype=np.uint8)
    images = rng.integers(0, 255, (len(labels), 28, 28), dtype=np.uint8)
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 0x801, len(labels)) + labels.tobytes()
    )
    (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x803, len(labels), 28, 28) + images.tobytes()
    )


def write_mnist(root: Path, name: str) -> None:
    folder = root / name / "raw"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(folder, "train", PER_CLASS, rng)
    write_idx(folder, "t10k", 2, rng)


@pytest.fixture
def no_md5(monkeypatch):
    """The fake CIFAR files cannot match torchvision's md5 sums; everything else is real."""
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)


@pytest.mark.parametrize(
    ("data", "writer", "classes", "channels", "size"),
    [
        ("cifar100", write_cifar100, 100, 3, 32),
        ("mnist", lambda r: write_mnist(r, "MNIST"), 10, 1, 28),
        ("fashion_mnist", lambda r: write_mnist(r, "FashionMNIST"), 10, 1, 28),
    ],
)
def test_torchvision_sets_load_offline_with_held_out_test(
    make_cfg, tmp_path, no_md5, data, writer, classes, channels, size
):
    writer(tmp_path / data)
    val_size = 2 * classes
    cfg = make_cfg(
        f"data={data}", f"data.root={tmp_path / data}", "data.download=false",
        f"data.val_size={val_size}", "data.batch_size=4",
    )  # fmt: skip
    sets = load_datasets(cfg.data)
    assert len(sets.class_names) == classes and sets.in_channels == channels
    assert len(sets.val) == val_size and len(sets.train) == classes * PER_CLASS - val_size
    assert len(sets.test) == 2 * classes  # torchvision's test split, held out
    # validation is carved from the train split, stratified, and disjoint from training
    assert not set(sets.train.indices) & set(sets.val.indices)
    val_labels = [int(sets.val.dataset.targets[i]) for i in sets.val.indices]
    assert np.bincount(val_labels, minlength=classes).tolist() == [2] * classes
    x, _ = sets.test[0]
    assert x.shape == (channels, size, size)
    loaders = build_data(cfg.data, seed=0)
    assert next(iter(loaders.train_loader))[0].shape == (4, channels, size, size)


def test_the_validation_split_is_fixed_by_split_seed_not_seed(make_cfg, tmp_path, no_md5):
    write_mnist(tmp_path / "m", "MNIST")
    common = [f"data.root={tmp_path / 'm'}", "data.download=false", "data.val_size=20"]

    def val_indices(*more: str) -> list[int]:
        return load_datasets(make_cfg("data=mnist", *common, *more).data).val.indices

    assert val_indices("seed=1") == val_indices("seed=2")
    assert val_indices("data.split_seed=1") != val_indices("data.split_seed=0")


@pytest.mark.parametrize(
    ("data", "files"),
    [("cifar100", "cifar-100-python"), ("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST")],
)
def test_missing_torchvision_files_name_the_data_set_and_where_to_get_it(
    make_cfg, tmp_path, data, files
):
    cfg = make_cfg(f"data={data}", f"data.root={tmp_path / 'none'}", "data.download=false")
    with pytest.raises(ConfigError, match=rf"not found under data.root.*{files}.*from http"):
        load_datasets(cfg.data)


def test_offline_download_failure_says_what_to_put_where(make_cfg, tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def offline(self):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(ConfigError, match="MNIST is not under data.root.*downloading it failed"):
        load_datasets(make_cfg("data=mnist", f"data.root={tmp_path / 'none'}").data)


def test_a_val_size_leaving_no_training_images_is_refused(make_cfg, tmp_path):
    write_mnist(tmp_path / "m", "MNIST")
    cfg = make_cfg(
        "data=mnist", f"data.root={tmp_path / 'm'}", "data.download=false", "data.val_size=60"
    )
    with pytest.raises(ConfigError, match="data.val_size=60 leaves no training images"):
        load_datasets(cfg.data)


def paths_of(subset) -> set[str]:
    return {subset.dataset.samples[i][0] for i in subset.indices}


def test_image_folder_test_fraction_is_a_stratified_held_out_split(make_cfg, tmp_path):
    root = make_image_folder(tmp_path / "img", {"a": 20, "b": 20, "c": 20}, size=8)
    cfg = make_cfg(
        "data=imagefolder", f"data.root={root}", "data.test_fraction=0.25",
        "data.cache_images=false", "data.image_size=8",
    )  # fmt: skip
    sets = load_datasets(cfg.data)
    test, val, train = paths_of(sets.test), paths_of(sets.val), paths_of(sets.train)
    assert len(test) == 15 and len(val) == 9 and len(train) == 36
    assert not (test & val) and not (test & train) and not (val & train)
    assert sorted(Path(p).parent.name for p in test).count("a") == 5  # stratified
    # fixed by split_seed: every load (training, then eval.py) holds out the same files
    again = load_datasets(cfg.data)
    assert paths_of(again.test) == test and paths_of(again.val) == val


def test_without_a_test_fraction_the_flowers_split_stays_80_20(make_cfg, tmp_path):
    """The seed study's train/validation split: the same files as before test splits existed."""
    from lrlab.data.split import stratified_split

    root = make_image_folder(tmp_path / "img", {"a": 10, "b": 10}, size=8)
    cfg = make_cfg("data=flowers", f"data.root={root}", "data.cache_images=false")
    sets = load_datasets(cfg.data)
    assert sets.test is None
    _, val_idx = stratified_split(np.array([0] * 10 + [1] * 10), 0.2, 0)
    assert sets.val.indices == val_idx


def test_image_folder_test_root_must_have_the_same_classes(make_cfg, tmp_path):
    root = make_image_folder(tmp_path / "img", {"a": 4, "b": 4}, size=8)
    other = make_image_folder(tmp_path / "test", {"a": 2, "z": 2}, size=8)
    cfg = make_cfg("data=imagefolder", f"data.root={root}", f"data.test_root={other}")
    with pytest.raises(ConfigError, match="data.test_root classes"):
        load_datasets(cfg.data)
    same = make_image_folder(tmp_path / "test2", {"a": 2, "b": 3}, size=8)
    sets = load_datasets(
        make_cfg("data=imagefolder", f"data.root={root}", f"data.test_root={same}").data
    )
    assert len(sets.test) == 5


@pytest.mark.parametrize("value", ["-0.1", "1.0"])
def test_bad_test_fraction_is_a_one_line_error(make_cfg, image_folder, value):
    from lrlab.tasks.config import check_config

    with pytest.raises(ConfigError, match=f"data.test_fraction must be in \\[0, 1\\), got {value}"):
        check_config(make_cfg("data=imagefolder", f"data.root={image_folder}",
                              f"data.test_fraction={value}"))  # fmt: skip


def test_missing_flowers_say_what_they_are_and_where_to_get_them(make_cfg, tmp_path):
    cfg = make_cfg("data=flowers", f"data.root={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError) as e:
        load_datasets(cfg.data)
    message = str(e.value)
    assert "does not exist" in message and "Flowers Recognition" in message
    assert "kaggle.com/datasets/alxmamaev/flowers-recognition" in message and "\n" not in message


def test_digits_test_fraction_holds_out_a_stratified_test_split(make_cfg):
    sets = load_datasets(make_cfg("data.test_fraction=0.2").data)
    n = len(sets.train) + len(sets.val) + len(sets.test)
    assert n == 1797 and len(sets.test) == pytest.approx(0.2 * 1797, abs=1)
    plain = load_datasets(make_cfg().data)
    assert plain.test is None and len(plain.val) == pytest.approx(0.2 * 1797, abs=1)
    assert torch.bincount(sets.test.tensors[1]).min() >= 30
