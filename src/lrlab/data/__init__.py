"""Data sets and their loaders.

A data set is a function returning `DataSets` (train and validation `Dataset`s, class names,
channels, image size), named by the `_target_` of a `conf/data/*.yaml`. `build_data` calls it
and wraps the result in seeded `DataLoader`s. Built in: `digits` (scikit-learn's handwritten
digits, no download), `image_folder` (any class-per-folder tree, e.g. the flowers) and
`cifar10` (torchvision).
"""

from lrlab.data.loaders import DataBundle, DataConfig, DataSets, build_data
from lrlab.data.split import stratified_split

__all__ = ["DataBundle", "DataConfig", "DataSets", "build_data", "stratified_split"]
