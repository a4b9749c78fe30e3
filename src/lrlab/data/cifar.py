"""CIFAR-10 (kept for `lrlab.data.cifar.*` targets): see lrlab.data.torchvision_sets."""

from lrlab.data.torchvision_sets import Cifar10Config, torchvision_dataset

CIFAR10_MEAN, CIFAR10_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


def cifar10(**kwargs) -> object:
    return torchvision_dataset(source="cifar10", **kwargs)


__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "Cifar10Config", "cifar10"]
