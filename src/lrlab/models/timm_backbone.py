"""Any timm architecture with a fresh classifier head for the data set's classes.

Pretrained weights come from timm's usual source (the Hugging Face hub, or its cache) or, with
`model.weights=/path/to/file` (safetensors or a torch state dict), from a local file through
timm's own local-file mechanism (`pretrained_cfg_overlay=dict(file=...)`). Either way timm drops
the pretrained classifier when the class count differs and adapts the stem to the channel count;
torch files load with `weights_only=True` (timm's `load_state_dict`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING
from torch import nn

from lrlab.errors import ConfigError
from lrlab.models.factory import ModelConfig

log = logging.getLogger(__name__)


class PretrainedWeightsUnavailable(ConfigError):
    """model.pretrained=true, no model.weights file, and the hub is unreachable and uncached
    (a ConfigError: the entry points print it as one line)."""


@dataclass
class TimmConfig(ModelConfig):
    """Any timm architecture with a fresh classifier head (`model=timm`)."""

    _target_: str = MISSING
    name: str = MISSING  # any timm.list_models() name, optionally with a weight tag
    pretrained: bool = MISSING  # timm's pretrained weights (hub/cache, or the `weights` file)
    weights: str | None = MISSING  # a .safetensors or .pth state dict: pretrained weights offline
    drop_rate: float | None = MISSING  # classifier dropout (null: the architecture's default)
    drop_path_rate: float | None = MISSING  # stochastic depth, where the architecture has it


def _weights_file(weights: str | None, pretrained: bool) -> Path | None:
    if weights in (None, ""):
        return None
    if not pretrained:
        raise ConfigError(
            f"model.weights={weights!r} is set but model.pretrained=false; "
            "set model.pretrained=true to load it"
        )
    path = Path(str(weights)).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.weights={weights!r} is not a file")
    return path


def _offline_message(name: str, error: Exception) -> str:
    return (
        f"model.pretrained=true: the pretrained weights of timm model {name!r} could not be "
        f"downloaded and are not in the local cache ({type(error).__name__}). Two ways out: "
        f"set model.weights=/path/to/{name}.safetensors (or a .pth state dict; see "
        "the README's 'Offline pretrained weights' recipe for how to make one on a machine with internet), or go online once "
        "(or copy a Hugging Face cache that has them into HF_HOME) so the hub download is "
        "cached. Offline, HF_HUB_OFFLINE=1 skips the network retries."
    )


def timm_model(
    name: str,
    pretrained: bool,
    weights: str | None,
    drop_rate: float | None,
    drop_path_rate: float | None,
    num_classes: int,
    in_channels: int,
    image_size: int,
) -> nn.Module:
    import timm
    from timm.models import get_pretrained_cfg_value, split_model_name_tag

    arch = split_model_name_tag(name)[0]
    if not timm.is_model(arch):
        raise ConfigError(f"model.name={name!r} is not a timm architecture (timm.list_models())")
    weights_file = _weights_file(weights, pretrained)

    kwargs: dict[str, Any] = {
        "num_classes": num_classes,
        "in_chans": in_channels,
        "drop_rate": drop_rate,  # None: the architecture's default
        "drop_path_rate": drop_path_rate,
    }
    try:
        fixed_size = get_pretrained_cfg_value(name, "fixed_input_size")
    except RuntimeError as e:  # an unknown weight tag, e.g. resnet34.bogus
        raise ConfigError(f"model.name={name!r}: {e}") from None
    if fixed_size:
        kwargs["img_size"] = image_size  # e.g. ViTs: position embeddings for this size
    overlay = {"file": str(weights_file)} if weights_file is not None else None
    try:
        model = timm.create_model(
            name, pretrained=pretrained, pretrained_cfg_overlay=overlay, **kwargs
        )
    except OSError as e:
        # huggingface_hub's LocalEntryNotFoundError and torch.hub's URLError are OSErrors.
        if pretrained and weights_file is None:
            raise PretrainedWeightsUnavailable(_offline_message(name, e)) from e
        raise
    except RuntimeError as e:
        if weights_file is None:
            raise
        # e.g. tensor size mismatches (another variant), or weights_only refusing a pickle
        detail = " ".join(str(e).split())
        detail = detail if len(detail) <= 400 else detail[:400] + " ..."
        raise ConfigError(
            f"model.weights={str(weights_file)!r} cannot be loaded into {name}: {detail}"
        ) from e
    if weights_file is not None:
        _check_loaded(model, weights_file, name)
    return model


def _check_loaded(model: nn.Module, weights: Path, name: str) -> None:
    """timm loads a file non-strictly when it swaps the head, so a file for another architecture
    (or with prefixed keys) would silently leave the backbone random: refuse that."""
    from timm.models import load_state_dict

    file_keys = set(load_state_dict(str(weights)))  # weights_only=True for torch files
    head = model.pretrained_cfg.get("classifier") or ()
    head = (head,) if isinstance(head, str) else tuple(head)
    backbone = [k for k in model.state_dict() if not k.startswith(tuple(f"{h}." for h in head))]
    missing = [k for k in backbone if k not in file_keys]
    if len(missing) == len(backbone):
        raise ConfigError(
            f"model.weights={str(weights)!r} has none of {name}'s parameter names "
            f"(e.g. {backbone[0]!r}); is it a state dict for this architecture?"
        )
    if missing:
        log.warning(
            "model.weights=%s lacks %d of %d backbone tensors of %s (e.g. %s); they stay random",
            weights,
            len(missing),
            len(backbone),
            name,
            missing[:3],
        )
