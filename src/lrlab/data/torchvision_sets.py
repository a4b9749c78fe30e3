"""torchvision's small classification sets: CIFAR-10, CIFAR-100, MNIST, FashionMNIST.

Train / validation / test: validation is carved from torchvision's train split (stratified,
`val_size` images, fixed by `split_seed`), and torchvision's test split is the held-out test
set, read only by `eval.py`. Downloads land in `root` when `download` (and online); offline,
put torchvision's files there first, or a one-line error says which and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import MISSING
from torch.utils.data import Subset

from lrlab.data.augment import effective_augment
from lrlab.data.loaders import DataConfig, DataSets
from lrlab.data.split import check_image_size, stratified_split
from lrlab.data.transforms import image_transforms
from lrlab.errors import ConfigError


class Source(NamedTuple):
    title: str
    cls: str  # torchvision.datasets class
    mean: list[float]  # torchvision's / the usual published train-split statistics
    std: list[float]
    files: str  # what an offline user puts into data.root
    url: str


SOURCES = {
    "cifar10": Source(
        "CIFAR-10",
        "CIFAR10",
        [0.4914, 0.4822, 0.4465],
        [0.2470, 0.2435, 0.2616],
        "cifar-10-batches-py/ (or cifar-10-python.tar.gz)",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "cifar100": Source(
        "CIFAR-100",
        "CIFAR100",
        [0.5071, 0.4865, 0.4409],
        [0.2673, 0.2564, 0.2762],
        "cifar-100-python/ (or cifar-100-python.tar.gz)",
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "mnist": Source(
        "MNIST",
        "MNIST",
        [0.1307],
        [0.3081],
        "MNIST/raw/ (train-images-idx3-ubyte, ...)",
        "https://yann.lecun.com/exdb/mnist/ (torchvision mirrors it)",
    ),
    "fashion_mnist": Source(
        "FashionMNIST",
        "FashionMNIST",
        [0.2860],
        [0.3530],
        "FashionMNIST/raw/ (train-images-idx3-ubyte, ...)",
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
}


@dataclass
class TorchvisionConfig(DataConfig):
    """Keys of every torchvision data set (conf/data/cifar10.yaml, ... show their values)."""

    source: str = MISSING  # a key of SOURCES
    root: str = MISSING  # downloads land here; offline, put torchvision's files here
    download: bool = MISSING
    image_size: int = MISSING
    val_size: int = MISSING  # validation images carved from the train split (stratified)
    split_seed: int = MISSING  # the split stays fixed across `seed`
    augment: bool = MISSING  # false: train without the augment group
    augmentation: Any = MISSING  # the `augment` group (pick it with augment=...)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_image_size(self.image_size)
        if self.source not in SOURCES:
            raise ConfigError(f"data.source={self.source!r} is not one of {sorted(SOURCES)}")
        if self.val_size < 1:
            raise ConfigError(f"data.val_size must be >= 1, got {self.val_size}")


# One schema per data set, so that `--cfg job` and errors name it; the values are in conf/data/.
class Cifar10Config(TorchvisionConfig):
    pass


class Cifar100Config(TorchvisionConfig):
    pass


class MnistConfig(TorchvisionConfig):
    pass


class FashionMnistConfig(TorchvisionConfig):
    pass


def torchvision_dataset(
    source: str,
    root: str,
    download: bool,
    image_size: int,
    val_size: int,
    split_seed: int,
    augment: bool,
    augmentation: Any,
) -> DataSets:
    import torchvision.datasets

    src = SOURCES[source]
    cls = getattr(torchvision.datasets, src.cls)
    path = Path(root).expanduser()
    train_tf, val_tf = image_transforms(
        image_size, src.mean, src.std, effective_augment(augmentation, augment)
    )
    try:
        train = cls(str(path), train=True, transform=train_tf, download=download)
        train_plain = cls(str(path), train=True, transform=val_tf, download=False)
        test = cls(str(path), train=False, transform=val_tf, download=download)
    except RuntimeError as e:  # "Dataset not found or corrupted" with download=False
        raise ConfigError(
            f"{src.title} not found under data.root={str(path)!r} ({e}); set data.download=true "
            f"when online, or put {src.files} there (from {src.url})"
        ) from None
    except OSError as e:  # URLError and friends: offline
        raise ConfigError(
            f"{src.title} is not under data.root={str(path)!r} and downloading it failed ({e}); "
            f"put {src.files} there (from {src.url}) and run again"
        ) from None
    targets = [int(t) for t in train.targets]
    if val_size >= len(targets):
        raise ConfigError(
            f"data.val_size={val_size} leaves no training images ({src.title} has {len(targets)})"
        )
    train_idx, val_idx = stratified_split(targets, val_size, split_seed, "data.val_size")
    return DataSets(
        Subset(train, train_idx),
        Subset(train_plain, val_idx),
        list(train.classes),
        in_channels=len(src.mean),
        image_size=image_size,
        test=test,
        eval_transform=val_tf,
    )
