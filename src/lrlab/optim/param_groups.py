"""Optimizer factory: `cfg.optimizer` is a partial `torch.optim` class, built over param groups.

One param group per layer group (timm's grouping, see `lrlab.models.groups.layer_groups`),
head first, each optionally split into a decayed part and a no-weight-decay part (biases,
normalization weights, timm's `no_weight_decay()` names). `optimizer.lr` is the head's lr; the
other groups get `optimizer.lr * lr_scale` with geometrically spaced scales down to
`1 / model.lr_mult` at the stem (fastai's `slice(lr / lr_mult, lr)`), or the explicit
`model.lr_scales`. Every group keeps its `lr_scale` (timm's key); schedules multiply each
group's own peak (`lrlab.schedules`), so the ratios hold at every step.

All parameters are in the optimizer, frozen ones too (see `lrlab.models.freezing`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from lrlab.errors import ConfigError
from lrlab.models.groups import group_label, layer_groups
from lrlab.optim.lr_scaling import SCALING_KEYS
from lrlab.utils import is_number

if TYPE_CHECKING:
    from lrlab.models.factory import ModelConfig


def lr_scales(
    n_groups: int, lr_mult: float = 1.0, scales: Sequence[float] | None = None
) -> list[float]:
    """Each layer group's lr as a fraction of the head's, stem first.

    Geometric spacing from `1 / lr_mult` (stem) to 1 (head): fastai's `even_mults`, i.e.
    `slice(lr / lr_mult, lr)`; or the explicit `scales` (one per group).
    """
    if scales is not None:
        scales = list(scales)
        if len(scales) != n_groups or not all(is_number(s) and s > 0 for s in scales):
            raise ConfigError(
                f"model.lr_scales={scales!r} must list {n_groups} positive numbers, "
                "one per layer group (stem first, head last)"
            )
        return [float(s) for s in scales]
    if not is_number(lr_mult) or lr_mult <= 0:
        raise ConfigError(f"model.lr_mult={lr_mult!r} must be a number > 0")
    if n_groups == 1:
        return [1.0]
    return [float(lr_mult) ** (-(n_groups - 1 - i) / (n_groups - 1)) for i in range(n_groups)]


def _no_decay(name: str, param: torch.nn.Parameter, patterns: set[str]) -> bool:
    # The rule of timm's param_groups_weight_decay: 1-d tensors (norm weights, biases), biases,
    # and the model's own no_weight_decay() names (e.g. ViT position embeddings).
    return (
        param.ndim <= 1
        or name.endswith(".bias")
        or any(fnmatch.fnmatch(name, pat) for pat in patterns)
    )


def param_groups(
    model: torch.nn.Module,
    lr: float,
    lr_mult: float = 1.0,
    scales: Sequence[float] | None = None,
    no_weight_decay_norm_bias: bool = True,
) -> list[dict[str, Any]]:
    """Optimizer param groups, head first: `params`, `lr`, `lr_scale`, `name`, `layer_group`,
    and `weight_decay=0` on the no-decay parts (the others take the optimizer's weight_decay)."""
    if not isinstance(no_weight_decay_norm_bias, bool):
        raise ConfigError(
            f"model.no_weight_decay_norm_bias={no_weight_decay_norm_bias!r} must be true or false"
        )
    groups = layer_groups(model)
    group_scales = lr_scales(len(groups), lr_mult, scales)
    params = dict(model.named_parameters())
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    out: list[dict[str, Any]] = []
    for i in reversed(range(len(groups))):  # head first: group 0's lr is optimizer.lr
        base = {"lr": lr * group_scales[i], "lr_scale": group_scales[i], "layer_group": i}
        label = group_label(i, len(groups))
        decay, no_decay = [], []
        for name in groups[i]:
            exempt = no_weight_decay_norm_bias and _no_decay(name, params[name], skip)
            (no_decay if exempt else decay).append(params[name])
        if decay:
            out.append({"params": decay, "name": label, **base})
        if no_decay:
            out.append(
                {"params": no_decay, "name": f"{label}.no_decay", "weight_decay": 0.0, **base}
            )
    return out


def check_lr(value: Any, key: str = "optimizer.lr") -> float:
    """A learning rate: a finite number > 0."""
    if not is_number(value) or value <= 0:
        hint = " (resolve 'auto' with the LR finder first)" if value == "auto" else ""
        raise ConfigError(f"{key}={value!r} must be a number > 0{hint}")
    return float(value)


def build_optimizer(
    optimizer_cfg: Mapping[str, Any],
    model: torch.nn.Module,
    settings: ModelConfig,
    lr: float | None = None,
) -> torch.optim.Optimizer:
    """Instantiate `optimizer_cfg` (a `_partial_` optimizer class: torch.optim's, timm's, ...)
    over the model's param groups, laid out by `settings` (the model's checked training keys:
    `lrlab.models.training_settings`); `lr` overrides `optimizer.lr`."""
    from hydra.utils import instantiate

    head_lr = check_lr(optimizer_cfg.get("lr")) if lr is None else check_lr(lr, "lr")
    groups = param_groups(
        model,
        head_lr,
        lr_mult=settings.lr_mult,
        scales=None if settings.lr_scales is None else list(settings.lr_scales),
        no_weight_decay_norm_bias=settings.no_weight_decay_norm_bias,
    )
    # lr=head_lr also makes optimizer.defaults["lr"] the head lr (what schedules refer to).
    torch_cfg = {k: v for k, v in optimizer_cfg.items() if k not in SCALING_KEYS}  # lrlab's own
    return instantiate(torch_cfg, lr=head_lr)(groups)


def set_peak_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Make `lr` the optimizer's lr: every group's lr (and `initial_lr`, if a scheduler already
    stamped one) keeps its ratio to the optimizer's own lr, so layer-wise ratios survive.
    Call it before building the schedule: a built schedule keeps the peaks it read.

    lr * (group/base) rather than group * (lr/base): a group at the base lr gets exactly `lr`,
    so `optimizer.lr=auto` trains bit for bit like `optimizer.lr=<the found value>`.
    """
    base = float(optimizer.defaults["lr"])
    optimizer.defaults["lr"] = lr
    for group in optimizer.param_groups:
        group["lr"] = lr * (float(group["lr"]) / base)
        if "initial_lr" in group:
            group["initial_lr"] = lr * (float(group["initial_lr"]) / base)


def group_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """Every param group's current lr, in order (for the `lr_groups` column of metrics.jsonl)."""
    return [float(g["lr"]) for g in optimizer.param_groups]
