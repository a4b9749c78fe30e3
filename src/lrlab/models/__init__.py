"""Models: a `conf/model/*.yaml` names a model class or factory with `_target_`.

`build_model(cfg.model, num_classes, in_channels, image_size)` calls it with the config's own
keys (all but the training keys of `ModelConfig`: freezing, layer-wise lrs) plus the data's
class and channel counts, and the image size where the target takes `image_size`.
"""

from lrlab.models.factory import ModelConfig, build_model, training_settings

__all__ = ["ModelConfig", "build_model", "training_settings"]
