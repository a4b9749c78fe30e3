"""The `optimizer:` node: its arguments checked, its lr scaled with the batch size, and the
optimizer built over the model's layer-wise param groups.

- Any optimizer class works by `_target_` (torch.optim's, timm.optim's `Lion`, `Lamb`, ..., a
  user's own): its signature says which keys exist, and its defaults each argument's type (a
  bool default takes only true/false: `nesterov=flase` would reach torch as a truthy string; a
  tuple default, `betas`, a list of numbers as long). The ranges are the ones torch and timm
  document (and assert with a traceback): `RANGES`.
- `lr_scaling`: `optimizer.lr` is the peak for `reference_batch_size` samples per optimizer
  step; a run whose effective batch size (data.batch_size x trainer.accumulate_grad_batches x
  data-parallel processes) differs trains with lr x effective / reference (`linear`: Goyal et
  al. 2017, for SGD), lr x sqrt(effective / reference) (`sqrt`: Krizhevsky 2014, Hoffer et al.
  2017, often preferred for Adam), or the lr as given (`none`, the default).
- Param groups: one per layer group (timm's grouping, `lrlab.models.groups.layer_groups`), head
  first, each optionally split into a decayed part and a no-weight-decay part (biases, norm
  weights, timm's `no_weight_decay()` names). `optimizer.lr` is the head's lr; the other groups
  get `optimizer.lr * lr_scale`, scales spaced geometrically down to `1 / model.lr_mult` at the
  stem (fastai's `slice(lr / lr_mult, lr)`) or the explicit `model.lr_scales`. Every group keeps
  its `lr_scale` (timm's key); schedules multiply each group's own peak, so the ratios hold. All
  parameters are in the optimizer, frozen ones too (`lrlab.models.freezing`).
"""

from __future__ import annotations

import fnmatch
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import MISSING

from lrlab.errors import ConfigError
from lrlab.models.groups import group_label, layer_groups
from lrlab.parallel import world_size
from lrlab.utils import import_target, is_number

if TYPE_CHECKING:
    from lrlab.models.factory import ModelConfig


# --- the arguments, checked against the class before anything is built

# lrlab fills these itself (param groups; `lr` is checked with 'auto' in mind by the caller).
FILLED_BY_LRLAB = ("params", "lr")

# Documented ranges of the arguments torch.optim and timm.optim share, by name:
# (test, what the value must be). `betas` is checked element by element.
NON_NEGATIVE = "weight_decay eps momentum dampening alpha lr_decay initial_accumulator_value"
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    **{k: (lambda v: v >= 0, ">= 0") for k in [*NON_NEGATIVE.split(), "momentum_decay"]},
    "rho": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "betas": (lambda v: 0 <= v < 1, "in [0, 1)"),
}


def optimizer_class(node: Mapping[str, Any], where: str) -> type:
    target = node.get("_target_")
    if not target:
        raise ConfigError(f"{where}._target_ is not set: name an optimizer class")
    return import_target(str(target), f"{where}._target_")


def check_optimizer_arguments(node: Mapping[str, Any], where: str = "optimizer") -> None:
    """Types and ranges of an `optimizer:` node; one-line ConfigErrors."""
    target = optimizer_class(node, where)
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return  # a builtin without a signature: the call itself checks
    for key, value in node.items():
        # Unknown keys are refused (with "did you mean") by the config's key check.
        if key in params and key not in FILLED_BY_LRLAB:
            check_argument(f"{where}.{key}", value, params[key])
    if node.get("nesterov") is True and not node.get(
        "momentum", params_default(params, "momentum")
    ):
        raise ConfigError(f"{where}.nesterov=true needs {where}.momentum > 0")
    if node.get("nesterov") is True and node.get("dampening", 0):
        raise ConfigError(f"{where}.nesterov=true needs {where}.dampening=0")


def params_default(params: Mapping[str, inspect.Parameter], name: str) -> Any:
    p = params.get(name)
    return None if p is None or p.default is p.empty else p.default


def check_argument(key: str, value: Any, param: inspect.Parameter) -> None:
    default = param.default
    annotation = str(param.annotation)
    if value is None:
        if default is None or "None" in annotation or "Optional" in annotation:
            return
        raise ConfigError(f"{key}=null: must be set ({type_name(default)})")
    if isinstance(default, bool) or (default is None and "bool" in annotation):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be true or false")
        return
    name = key.rsplit(".", 1)[-1]
    if isinstance(default, tuple | list):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise ConfigError(
                f"{key}={as_text(value)} must list {len(default)} numbers (e.g. {list(default)})"
            )
        for v in value:
            check_number(key, v, name, whole=as_text(value))
    elif is_number(default) or (default is None and ("float" in annotation or "int" in annotation)):
        check_number(key, value, name)


def check_number(key: str, value: Any, name: str, whole: str | None = None) -> None:
    shown = whole if whole is not None else as_text(value)
    if not is_number(value):
        raise ConfigError(f"{key}={shown} must be a number")
    rule = RANGES.get(name)
    if rule is not None and not rule[0](value):
        raise ConfigError(f"{key}={shown} must be {rule[1]}" + (" each" if whole else ""))


def as_text(value: Any) -> str:
    return repr(list(value)) if isinstance(value, list | tuple) else repr(value)


def type_name(default: Any) -> str:
    return "true or false" if isinstance(default, bool) else type(default).__name__


# --- lr_scaling: the peak lr follows the effective batch size

RULES = ("none", "linear", "sqrt")


@dataclass
class LrScalingConfig:
    """Keys every `optimizer:` config has besides the torch.optim class's arguments."""

    lr_scaling: str = MISSING  # none | linear | sqrt: scale the peak lr with the batch size
    reference_batch_size: int | None = MISSING  # the effective batch size optimizer.lr is for


SCALING_KEYS = tuple(asdict(LrScalingConfig()))


def scaling_settings(optimizer_cfg: Mapping[str, Any], where: str = "optimizer") -> LrScalingConfig:
    """The node's lr scaling keys, checked: one-line errors. The shipped optimizer configs state
    them; a config of your own without them is not scaled."""
    rule = optimizer_cfg.get("lr_scaling") or "none"
    reference = optimizer_cfg.get("reference_batch_size")
    if rule not in RULES:
        raise ConfigError(f"{where}.lr_scaling={rule!r}: must be {' | '.join(RULES)}")
    if reference is not None and (
        isinstance(reference, bool) or not isinstance(reference, int) or reference < 1
    ):
        raise ConfigError(
            f"{where}.reference_batch_size={reference!r}: must be an integer >= 1 or null"
        )
    if rule != "none" and reference is None:
        raise ConfigError(
            f"{where}.lr_scaling={rule} needs {where}.reference_batch_size: the effective batch "
            f"size {where}.lr is meant for (e.g. 256)"
        )
    if rule != "none" and optimizer_cfg.get("lr") == "auto":
        raise ConfigError(
            f"{where}.lr_scaling={rule} scales a given lr; with {where}.lr=auto the LR finder "
            f"measures at this batch size already: set {where}.lr_scaling=none"
        )
    return LrScalingConfig(rule, reference)


def lr_factor(rule: str, effective: int, reference: int | None) -> float:
    if rule == "none" or reference is None:
        return 1.0
    ratio = effective / reference
    return ratio if rule == "linear" else math.sqrt(ratio)


def scaled_peak_lr(
    optimizer_cfg: Mapping[str, Any], batch_size: int, accumulate: int, where: str = "optimizer"
) -> tuple[float | None, dict[str, Any] | None]:
    """(the peak lr to train with, what summary.json records) for `optimizer_cfg`; (None, None)
    when the lr is not scaled (the config's lr, or `auto`, stands)."""
    s = scaling_settings(optimizer_cfg, where)
    if s.lr_scaling == "none":
        return None, None
    processes = world_size()
    effective = batch_size * accumulate * processes
    factor = lr_factor(s.lr_scaling, effective, s.reference_batch_size)
    lr = float(optimizer_cfg["lr"]) * factor
    record = {
        "rule": s.lr_scaling,
        "reference_batch_size": s.reference_batch_size,
        "effective_batch_size": effective,
        "batch_size": batch_size,
        "accumulate_grad_batches": accumulate,
        "world_size": processes,
        "factor": factor,
        "base_lr": float(optimizer_cfg["lr"]),
        "lr": lr,
    }
    return lr, record


# --- param groups and the optimizer over them


def lr_scales(
    n_groups: int, lr_mult: float = 1.0, scales: Sequence[float] | None = None
) -> list[float]:
    """Each layer group's lr as a fraction of the head's, stem first: geometric from
    `1 / lr_mult` to 1 (fastai's `even_mults`), or the explicit `scales` (one per group)."""
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
