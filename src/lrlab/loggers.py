"""Experiment trackers beyond the always-written local run records (see `records.py`).

`build_trackers(cfg)` returns one tracker per entry of the `logger` group: `logger=wandb`,
`logger=csv` or `logger=[csv,wandb]`. Trackers never raise into training: a failing W&B call
warns once, disables W&B for the rest of the run, and the local records go on.
"""

from __future__ import annotations

import contextlib
import csv
import os
import warnings
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from lrlab.errors import ConfigError
from lrlab.utils import json_safe

WANDB_MODES = ("auto", "online", "offline", "disabled")
# Run statuses that W&B should show as crashed (a diverged run finished its job: it stopped).
_FAILED_STATUSES = ("failed", "interrupted")


class Tracker(Protocol):
    def log_metrics(self, row: dict[str, Any]) -> None: ...  # a metrics.jsonl row (step or epoch)
    def log_summary(self, summary: dict[str, Any]) -> None: ...
    def log_image(self, name: str, path: Path) -> None: ...
    def finish(self, status: str) -> None: ...


def build_trackers(cfg: DictConfig, job_type: str = "train") -> list[Tracker]:
    """Trackers selected by the `logger` group (`logger=local` adds none); `job_type` names
    the kind of run (`train`, `find_lr`) for W&B.

    Raises ConfigError (a ValueError) for bad logger settings; never for tracker failures.
    """
    logger_cfg = cfg.get("logger") or {}
    run_dir = Path(cfg.paths.output_dir)
    trackers: list[Tracker] = []
    if logger_cfg.get("csv") is not None:
        trackers.append(CsvTracker(run_dir / logger_cfg.csv.get("filename", "metrics.csv")))
    if logger_cfg.get("wandb") is not None:
        validate_wandb_config(logger_cfg.wandb)
        trackers.append(WandbTracker(cfg, run_dir, job_type))
    return trackers


# ---------------------------------------------------------------------------- csv


class CsvTracker:
    """Epoch rows as a CSV table (columns from the first row), for spreadsheets and pandas."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fields: list[str] | None = None
        if path.is_file():  # a resumed run appends under the existing header
            with path.open(newline="") as f:
                self._fields = next(csv.reader(f), None)

    def log_metrics(self, row: dict[str, Any]) -> None:
        if row.get("type") != "epoch":
            return
        row = {k: v for k, v in row.items() if k != "type"}
        new = self._fields is None
        if new:
            self._fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def log_summary(self, summary: dict[str, Any]) -> None:
        pass

    def log_image(self, name: str, path: Path) -> None:
        pass

    def finish(self, status: str) -> None:
        pass


# ---------------------------------------------------------------------------- wandb


def validate_wandb_config(wcfg: DictConfig) -> None:
    mode = wcfg.get("mode", "auto")
    if mode not in WANDB_MODES:
        raise ConfigError(f"logger.wandb.mode must be one of {'|'.join(WANDB_MODES)}, got {mode!r}")
    timeout = wcfg.get("init_timeout", 60)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"logger.wandb.init_timeout must be a positive number, got {timeout!r}")


def has_wandb_credentials() -> bool:
    """True when an API key is configured (env, settings, .netrc); never prompts or connects."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    import wandb

    try:
        return bool(wandb.login(prompt=False, verify=False))  # wandb >= 0.22
    except TypeError:  # older wandb: no `prompt` argument; its deprecated attribute still works
        return bool(getattr(wandb.api, "api_key", None))


def resolve_wandb_mode(mode: str) -> str:
    """`auto`: WANDB_MODE if set, else online with credentials, offline without."""
    if mode != "auto":
        return mode
    env_mode = os.environ.get("WANDB_MODE")
    if env_mode in ("online", "offline", "disabled"):
        return env_mode
    if env_mode == "dryrun":
        return "offline"
    return "online" if has_wandb_credentials() else "offline"


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


def wandb_init_kwargs(
    cfg: DictConfig,
    run_dir: Path,
    hydra: dict[str, Any] | None = None,
    job_type: str = "train",
) -> dict:
    """Arguments for `wandb.init` (without `mode`/`settings`), from the config and Hydra."""
    wcfg = cfg.logger.wandb
    hydra = hydra_context() if hydra is None else hydra
    sweep_dir = hydra.get("sweep_dir")
    tags = [*(cfg.get("tags") or []), *(wcfg.get("tags") or [])]
    return {
        "project": wcfg.get("project") or "lrlab",
        "entity": wcfg.get("entity"),
        "group": wcfg.get("group") or (sweep_group(sweep_dir) if sweep_dir else None),
        "name": wcfg.get("name") or run_name(hydra.get("overrides", []), hydra.get("swept")),
        "job_type": wcfg.get("job_type") or job_type,
        "tags": [str(t) for t in dict.fromkeys(tags)] or None,
        "notes": wcfg.get("notes"),
        "config": config_dict(cfg),
        "dir": str(run_dir),  # offline runs land in <run dir>/wandb/, not in the repo root
    }


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


class WandbTracker:
    """One W&B run per training job; every W&B call guarded (see `_guard`)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, job_type: str = "train") -> None:
        self.run: Any = None
        self.job_type = job_type
        self.wcfg = cfg.logger.wandb
        self.run_dir = run_dir
        self._warned = False
        try:
            self._start(cfg)
        except Exception as e:
            self._fail("could not start", e)

    def _start(self, cfg: DictConfig) -> None:
        import wandb

        mode = resolve_wandb_mode(self.wcfg.get("mode", "auto"))
        if mode == "disabled":
            return
        kwargs = wandb_init_kwargs(cfg, self.run_dir, job_type=self.job_type)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # A sequential multirun calls this once per job in one process: finish the last job's
        # run, or wandb.init would hand it back (reinit="return_previous" outside notebooks).
        if wandb.run is not None:
            wandb.run.finish()
        try:
            self.run = self._init(wandb, mode, kwargs)
        except Exception as e:
            if mode != "online":
                raise
            # No network / bad key / service error: keep the run's W&B data for a later sync.
            self._warn(f"W&B online init failed ({type(e).__name__}: {e}); logging offline instead")
            mode = "offline"
            self.run = self._init(wandb, mode, kwargs)
        self.mode = mode
        self.run.define_metric("trainer/step")
        self.run.define_metric("trainer/epoch")
        self.run.define_metric("*", step_metric="trainer/step")
        if mode == "offline":
            offline_dir = Path(self.run.dir).parent  # <run dir>/wandb/offline-run-*/files
            print(f"wandb: logging offline; upload later with `wandb sync {offline_dir}`")

    def _init(self, wandb: Any, mode: str, kwargs: dict[str, Any]) -> Any:
        settings = wandb.Settings(
            init_timeout=float(self.wcfg.get("init_timeout", 60)),
            silent=bool(self.wcfg.get("silent", True)),
        )
        return wandb.init(mode=mode, reinit="finish_previous", settings=settings, **kwargs)

    def _warn(self, message: str) -> None:
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _fail(self, what: str, error: BaseException) -> None:
        """Warn once, drop the W&B run; the local records are unaffected."""
        if not self._warned:
            self._warned = True
            self._warn(
                f"W&B logging disabled for this run: {what} ({type(error).__name__}: {error}); "
                f"local records in {self.run_dir} continue"
            )
        run, self.run = self.run, None
        if run is not None:
            with contextlib.suppress(Exception):  # best effort: the run is already broken
                run.finish(exit_code=1)

    def log_metrics(self, row: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.log(wandb_row(row))
        except Exception as e:
            self._fail("log failed", e)

    def log_image(self, name: str, path: Path) -> None:
        if self.run is None:
            return
        try:
            import wandb

            self.run.log({f"plots/{name}": wandb.Image(str(path))})
        except Exception as e:
            self._fail("image log failed", e)

    def log_summary(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update(json_safe(summary))  # NaN/inf as null, as in summary.json
        except Exception as e:
            self._fail("summary update failed", e)

    def finish(self, status: str) -> None:
        if self.run is None:
            return
        try:
            if self.wcfg.get("log_checkpoint", False):
                self._log_checkpoints()
            self.run.summary["status"] = status
            self.run.finish(exit_code=1 if status in _FAILED_STATUSES else 0)
        except Exception as e:
            self._fail("finish failed", e)
        self.run = None

    def _log_checkpoints(self) -> None:
        import wandb

        files = [
            p
            for pattern in ("*.ckpt", "*.safetensors")
            for p in sorted(self.run_dir.rglob(pattern))
            if "wandb" not in p.relative_to(self.run_dir).parts
        ]
        if files:
            artifact = wandb.Artifact(f"checkpoint-{self.run.id}", type="model")
            for p in files:
                artifact.add_file(str(p), name=str(p.relative_to(self.run_dir)))
            self.run.log_artifact(artifact)
