"""Seeding, device selection and environment facts shared by the entry points."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import math
import os
import platform
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrlab.errors import ConfigError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def select_device(device: str) -> torch.device:
    """`trainer.device`: auto picks CUDA, then Apple's MPS, then the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ConfigError(
            f"trainer.device={device!r} is not a device (auto, cpu, cuda, cuda:N, mps)"
        ) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={device!r} but CUDA is not available; use auto or cpu")
    if chosen.type == "mps" and not mps_available():
        raise ConfigError(f"trainer.device={device!r} but MPS is not available; use auto or cpu")
    return chosen


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def select_precision(precision: str, device: torch.device) -> str:
    """`trainer.precision`: auto is bf16-mixed on a CUDA GPU that has bf16 (Ampere and later),
    16-mixed (with grad scaling) on an older one, and 32 elsewhere (the CPU and MPS, where
    autocast is slower than float32: benchmarks/README.md)."""
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "32"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def apply_device_settings(
    device: torch.device, cudnn_benchmark: bool, matmul_precision: str, deterministic: bool
) -> None:
    """The CUDA settings `trainer.cudnn_benchmark` and `trainer.matmul_precision` ask for (the
    CPU keeps float32 matmuls exact: its results stay as they were)."""
    if device.type != "cuda":
        return
    # cuDNN's autotuner picks the fastest kernels per input shape; deterministic runs must not.
    torch.backends.cudnn.benchmark = cudnn_benchmark and not deterministic
    torch.set_float32_matmul_precision(matmul_precision)  # high: TF32 tensor cores


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("lrlab", "torch", "torchvision", "timm", "hydra-core", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def rng_state() -> dict:
    """Every RNG's state, in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def json_safe(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def instantiate(node: Any, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, letting a ConfigError from the target through as it is (Hydra
    wraps every error of the call in an InstantiationException with a multi-line message)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate as hydra_instantiate

    try:
        return hydra_instantiate(node, **kwargs)
    except InstantiationException as e:
        if isinstance(e.__cause__, ConfigError):
            raise e.__cause__ from None
        raise


def is_number(value: Any) -> bool:
    """A finite int or float (a bool is not a number here: YAML's `true` must not pass as 1)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def import_target(path: str, key: str) -> Any:
    """The object a `_target_` names, or a one-line ConfigError (with "did you mean" when the
    module exists: `torch.optim.Adamm`)."""
    import difflib
    import importlib

    from hydra.utils import get_object

    try:
        return get_object(path)
    except Exception:
        pass
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise ConfigError(f"{key}={path!r} cannot be imported: {e}") from None
    close = difflib.get_close_matches(name, [n for n in dir(module) if not n.startswith("_")], 1)
    hint = f"; did you mean {module_name}.{close[0]}?" if close else ""
    raise ConfigError(f"{key}={path!r} cannot be imported: {module_name} has no {name!r}{hint}")


def write_cache_file(path: Path, write: Callable[[Any], object], what: str) -> bool:
    """A cache file (split, channel statistics, decoded images): `write(binary file)` into a
    temporary file renamed to `path`, so the other jobs of a parallel sweep never read half of
    it. A read-only or full disk only costs the work next time: a warning naming `what`, no
    half-written file left behind, and False."""
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
        tmp.replace(path)
    except OSError as e:
        logging.getLogger("lrlab.data").warning("could not cache %s at %s: %s", what, path, e)
        with contextlib.suppress(OSError):  # where there is a tmp file (a folder may be a file)
            tmp.unlink(missing_ok=True)
        return False
    return True
