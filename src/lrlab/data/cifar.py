"""torchvision's CIFAR-10 (50k train images; the 10k test split serves as validation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from lrlab.data.loaders import DataConfig, DataSets
from lrlab.data.split import check_image_size
from lrlab.data.transforms import image_transforms
from lrlab.errors import ConfigError

# torchvision's published CIFAR-10 train-split statistics.
CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


@dataclass
class Cifar10Config(DataConfig):
    _target_: str = MISSING
    name: str = MISSING
    batch_size: int = MISSING
    root: str = MISSING  # downloads land here; offline, put cifar-10-batches-py/ here
    download: bool = MISSING
    image_size: int = MISSING
    augment: bool = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        check_image_size(self.image_size)


def cifar10(root: str, download: bool, image_size: int, augment: bool) -> DataSets:
    from torchvision.datasets import CIFAR10

    path = Path(root).expanduser()
    train_tf, val_tf = image_transforms(image_size, CIFAR10_MEAN, CIFAR10_STD, augment=augment)
    try:
        train = CIFAR10(str(path), train=True, transform=train_tf, download=download)
        test = CIFAR10(str(path), train=False, transform=val_tf, download=download)
    except RuntimeError as e:  # "Dataset not found or corrupted" with download=False
        raise ConfigError(
            f"CIFAR-10 not found under data.root={str(path)!r} ({e}); set data.download=true "
            "when online, or put cifar-10-batches-py/ there"
        ) from None
    except OSError as e:  # URLError and friends: offline
        raise ConfigError(
            f"CIFAR-10 is not under data.root={str(path)!r} and downloading it failed ({e}); "
            "copy cifar-10-python.tar.gz or cifar-10-batches-py/ there and run again"
        ) from None
    return DataSets(train, test, list(train.classes), in_channels=3, image_size=image_size)
