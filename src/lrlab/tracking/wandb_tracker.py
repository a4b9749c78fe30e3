"""`logger=wandb`: one W&B run per training job, every W&B call guarded.

A failing W&B call warns once, disables W&B for the rest of the run, and the local records go
on. Without network, an online start falls back to offline mode after `init_timeout` seconds,
removing what the failed attempt wrote; in a sweep it also leaves a marker file in the sweep
dir (`OFFLINE_MARKER`), and the sweep's later jobs (in this process or another: any launcher)
start offline at once instead of waiting again. The marker lasts for one sweep invocation
(`clear_offline_marker` runs when a sweep starts).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig

from lrlab.errors import ConfigError
from lrlab.tracking import naming
from lrlab.tracking.naming import wandb_row
from lrlab.tracking.wandb_reach import shared_endpoint_check, wandb_base_url
from lrlab.utils import json_safe

WANDB_MODES = ("auto", "online", "offline", "disabled")
# In a sweep dir: an earlier job of this sweep could not reach W&B (the file says why).
OFFLINE_MARKER = ".wandb_offline"
# Run statuses that W&B should show as crashed (a diverged run finished its job: it stopped).
_FAILED_STATUSES = ("failed", "interrupted", "preempted")
# In the run dir: the W&B run's id, so that a resumed run (trainer.resume) continues that run.
RUN_ID_FILE = "wandb_run_id"


@dataclass
class WandbConfig:
    project: str = MISSING
    entity: str | None = MISSING  # your user or team; null: your default entity
    mode: str = MISSING  # auto | online | offline | disabled
    group: str | None = MISSING  # null: multirun jobs share their sweep dir's name
    name: str | None = MISSING  # null: the run's overrides (e.g. recipe=adam,seed=1)
    job_type: str | None = MISSING  # null: the entry point (train | find_lr)
    tags: list[str] = MISSING  # added to the config's top-level `tags`
    notes: str | None = MISSING
    log_checkpoint: bool = MISSING  # upload the run dir's checkpoints as a `model` artifact
    init_timeout: float = MISSING  # seconds before giving up on the W&B service (then: offline)
    silent: bool = MISSING  # no W&B banner; lrlab prints one line for offline runs

    def __post_init__(self) -> None:
        if self.mode not in WANDB_MODES:
            raise ConfigError(
                f"logger.wandb.mode must be one of {'|'.join(WANDB_MODES)}, got {self.mode!r}"
            )
        if not self.init_timeout > 0:
            raise ConfigError(
                f"logger.wandb.init_timeout must be a positive number, got {self.init_timeout!r}"
            )


def wandb_init_kwargs(
    wcfg: WandbConfig,
    run_config: DictConfig,
    run_dir: Path,
    hydra: dict[str, Any] | None = None,
    job_type: str = "train",
) -> dict:
    """Arguments for `wandb.init` (without `mode`/`settings`) from `logger.wandb` (`wcfg`), the
    run's whole config (logged, and its top-level `tags`) and Hydra's runtime state."""
    hydra = naming.hydra_context() if hydra is None else hydra
    sweep_dir = hydra.get("sweep_dir")
    tags = [*(run_config.get("tags") or []), *wcfg.tags]
    return {
        "project": wcfg.project,
        "entity": wcfg.entity,
        "group": wcfg.group or (naming.sweep_group(sweep_dir) if sweep_dir else None),
        "name": wcfg.name or naming.run_name(hydra.get("overrides", []), hydra.get("swept")),
        "job_type": wcfg.job_type or job_type,
        "tags": [str(t) for t in dict.fromkeys(tags)] or None,
        "notes": wcfg.notes,
        "config": naming.config_dict(run_config),
        "dir": str(run_dir),  # offline runs land in <run dir>/wandb/, not in the repo root
    }


def has_wandb_credentials() -> bool:
    """True when an API key is configured (env, settings, .netrc); never prompts or connects."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    import wandb

    try:
        return bool(wandb.login(prompt=False, verify=False))  # wandb >= 0.22
    except TypeError:  # older wandb: no `prompt` argument; its deprecated attribute still works
        return bool(getattr(wandb.api, "api_key", None))


def offline_marker(sweep_dir: Path | None) -> Path | None:
    return Path(sweep_dir) / OFFLINE_MARKER if sweep_dir is not None else None


def clear_offline_marker(sweep_dir: Path) -> None:
    """A new sweep invocation tries online again (the network may be back)."""
    (Path(sweep_dir) / OFFLINE_MARKER).unlink(missing_ok=True)


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


def first_line(error: BaseException) -> str:
    """wandb's messages go on with advice about its own settings: keep the first line."""
    return (str(error).strip().splitlines() or [""])[0]


def remove_new_entries(folder: Path, earlier: set[Path]) -> None:
    """Delete what appeared in `folder` since `earlier` was listed (a failed run's files),
    and links left pointing into it."""
    if not folder.is_dir():
        return
    for path in set(folder.iterdir()) - earlier:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for path in folder.iterdir():
        if path.is_symlink() and not path.exists():
            path.unlink(missing_ok=True)


class WandbTracker:
    """One W&B run per training job; every W&B call guarded (see `_guard`)."""

    def __init__(
        self, wcfg: WandbConfig, run_config: DictConfig, run_dir: Path, job_type: str = "train"
    ) -> None:
        self.run: Any = None
        self.job_type = job_type
        self.wcfg = wcfg
        self.run_dir = run_dir
        self._warned = False
        try:
            self._start(run_config)
        except Exception as e:
            self._fail("could not start", e)

    def _start(self, run_config: DictConfig) -> None:
        import wandb

        mode = resolve_wandb_mode(self.wcfg.mode)
        if mode == "disabled":
            return
        if os.environ.get("WANDB_MODE") == "":  # unset, as for lrlab: wandb refuses "" itself
            del os.environ["WANDB_MODE"]
        hydra = naming.hydra_context()
        marker = offline_marker(hydra.get("sweep_dir"))
        kwargs = wandb_init_kwargs(
            self.wcfg, run_config, self.run_dir, hydra=hydra, job_type=self.job_type
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # A sequential multirun calls this once per job in one process: finish the last job's
        # run, or wandb.init would hand it back (reinit="return_previous" outside notebooks).
        if wandb.run is not None:
            wandb.run.finish()
        # No network: found out in seconds (and once per sweep), not after init_timeout
        problem = shared_endpoint_check(marker, wandb_base_url()) if mode == "online" else None
        if mode == "online" and marker is not None and marker.is_file() and problem is None:
            print(
                f"wandb: logging offline without trying W&B: an earlier job of this sweep could "
                f"not reach it ({marker})"
            )
            mode = "offline"
        id_file = self.run_dir / RUN_ID_FILE
        if id_file.is_file():  # this dir's run is being resumed: continue its W&B run
            kwargs.update(id=id_file.read_text().strip(), resume="allow")
        wandb_dir = self.run_dir / "wandb"
        earlier = set(wandb_dir.iterdir()) if wandb_dir.is_dir() else set()
        try:
            if problem is not None:
                raise ConnectionError(problem)
            self.run = self._init(wandb, mode, kwargs)
        except Exception as e:
            if mode != "online":
                raise
            # No network / bad key / service error: keep the run's W&B data for a later sync.
            remove_new_entries(wandb_dir, earlier)  # the failed attempt's run dir and links
            why = f"{type(e).__name__}: {first_line(e)}"
            self._warn(
                f"W&B online init failed ({why}); logging offline instead. On a slow "
                f"connection raise logger.wandb.init_timeout (now {self.wcfg.init_timeout:g} s); without one "
                "set logger.wandb.mode=offline"
                + ("; the sweep's later jobs start offline at once" if marker else "")
            )
            if marker is not None:
                with contextlib.suppress(OSError):  # best effort: it only saves time
                    marker.write_text(f"W&B online init failed ({why})\n")
            mode = "offline"
            self.run = self._init(wandb, mode, kwargs)
        self.mode = mode
        with contextlib.suppress(OSError):  # best effort: only a later resume needs it
            id_file.write_text(f"{self.run.id}\n")
        self.run.define_metric("trainer/step")
        self.run.define_metric("trainer/epoch")
        self.run.define_metric("*", step_metric="trainer/step")
        if mode == "offline":
            offline_dir = Path(self.run.dir).parent  # <run dir>/wandb/offline-run-*/files
            print(f"wandb: logging offline; upload later with `wandb sync {offline_dir}`")

    def _init(self, wandb: Any, mode: str, kwargs: dict[str, Any]) -> Any:
        settings = wandb.Settings(
            init_timeout=float(self.wcfg.init_timeout), silent=self.wcfg.silent
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
            if self.wcfg.log_checkpoint:
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
