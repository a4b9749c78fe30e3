"""An `optimizer:` node's arguments, checked against its `_target_` before anything is built.

Any optimizer class works by `_target_` (torch.optim's, timm.optim's `Lion`, `Lamb`, `Adan`,
..., or a user's own): the class's signature says which keys exist (a misspelt one gets "did
you mean"), and its defaults say each argument's type: a bool default takes only true/false
(`nesterov=flase` would otherwise reach torch as a truthy string), a number default a number,
a tuple default (`betas`) a list of numbers of the same length. The ranges are the ones torch
and timm document (and assert with a traceback): `RANGES` below.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from lrlab.errors import ConfigError
from lrlab.utils import import_target, is_number

# lrlab fills these itself (param groups; `lr` is checked with 'auto' in mind by the caller).
FILLED_BY_LRLAB = ("params", "lr")

# Documented ranges of the arguments torch.optim and timm.optim share, by name:
# (test, what the value must be). `betas` is checked element by element.
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "eps": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: v >= 0, ">= 0"),
    "dampening": (lambda v: v >= 0, ">= 0"),
    "alpha": (lambda v: v >= 0, ">= 0"),
    "lr_decay": (lambda v: v >= 0, ">= 0"),
    "initial_accumulator_value": (lambda v: v >= 0, ">= 0"),
    "rho": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "momentum_decay": (lambda v: v >= 0, ">= 0"),
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
