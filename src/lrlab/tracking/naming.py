"""W&B run names, groups and config from Hydra's runtime state (multirun jobs, swept keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def hydra_context() -> dict[str, Any]:
    """Job name, overrides, and for multirun jobs the sweep dir and swept keys; {} outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return {}
        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        # the job's dir is <sweep dir>/<subdir>: its parent groups the sweep's jobs
        sweep_dir = Path(hc.runtime.output_dir).parent if multirun else None
        return {
            "job_name": hc.job.name,
            "overrides": list(hc.overrides.task),
            "sweep_dir": sweep_dir,
            "swept": swept_keys(sweep_dir, hc.sweeper.get("params")) if multirun else None,
        }
    except Exception:  # a partially set-up HydraConfig must not stop training
        return {}


def swept_keys(sweep_dir: Path, config_params: Any) -> set[str]:
    """Keys the sweep varies: `hydra.sweeper.params` and the command line's sweep overrides
    (`optimizer=sgd,adam`), read from the multirun.yaml Hydra saves before the first job."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = {str(k) for k in (config_params or {})}
    multirun_file = sweep_dir / "multirun.yaml"
    try:
        task = OmegaConf.load(multirun_file).hydra.overrides.task
        parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
        keys |= {o.key_or_group for o in parsed if o.is_sweep_override()}
    except Exception:  # no or unusual multirun.yaml: the name falls back to all overrides
        pass
    return keys


def run_name(overrides: list[str], swept: set[str] | None = None) -> str | None:
    """`recipe=adam,seed=1`: a multirun job's swept overrides, else all of its overrides
    (`experiment=` dropped when others remain)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    if swept:
        chosen = [o for o, k in zip(overrides, keys, strict=True) if k in swept]
        if chosen:
            return ",".join(chosen)
    rest = [o for o, k in zip(overrides, keys, strict=True) if k != "experiment"]
    return ",".join(rest or overrides) or None


def sweep_group(sweep_dir: Path) -> str:
    """`2026-01-01/12-00-00` from outputs/multiruns/2026-01-01/12-00-00 (the time alone repeats)."""
    return f"{sweep_dir.parent.name}/{sweep_dir.name}" if sweep_dir.parent.name else sweep_dir.name


def config_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers (unresolvable interpolations left as text)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except Exception:
        return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def wandb_row(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics.jsonl row as W&B keys: `train/loss`, `val/acc`, `lr`, `lr/group_1`, `momentum`."""
    epoch_row = row.get("type") == "epoch"
    out: dict[str, Any] = {"trainer/step": row.get("step"), "trainer/epoch": row.get("epoch")}
    for key, value in row.items():
        if key in ("type", "step", "epoch"):
            continue
        if key == "lr_groups":
            out.update({f"lr/group_{i}": v for i, v in enumerate(value or [])})
        elif key == "lr" and epoch_row:
            continue  # already logged per step
        elif isinstance(value, int | float) and not isinstance(value, bool):
            split, _, name = key.partition("_")
            if split in ("train", "val") and name:
                key = (
                    f"{split}/{name}_epoch"
                    if key == "train_loss" and epoch_row
                    else f"{split}/{name}"
                )
            out[key] = value
    return {k: v for k, v in out.items() if v is not None}
