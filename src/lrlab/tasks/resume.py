"""Where a run starts: fresh, from a checkpoint (`trainer.resume`), or not at all (a finished
run that `trainer.resume=auto` finds). A run never writes into a directory that holds another
run's records, and a resume with another model, optimizer, schedule or data is refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lrlab.callbacks.checkpoints import LAST
from lrlab.engine.checkpoint import load_checkpoint
from lrlab.errors import ConfigError
from lrlab.tracking.records import METRICS_FILE, SUMMARY_FILE, read_json

HYDRA_CONFIG = Path(".hydra") / "config.yaml"  # written by lrlab.cli.jobs.write_hydra_files
FINISHED = ("completed", "diverged")  # outcomes; a re-run with trainer.resume=auto reports them
# Config keys that may differ on resume: they change where and how a run is recorded, run or
# loaded, not what it trains (a key covers its sub-keys).
RESUMABLE_KEYS = (
    "trainer.epochs",
    "trainer.resume",
    "trainer.progress_bar",
    "trainer.num_workers",
    "trainer.prefetch_factor",
    "trainer.cudnn_benchmark",
    "trainer.num_threads",
    "trainer.compile",
    "trainer.compile_backend",
    "trainer.compile_mode",
    "optimized_metric",
    "trainer.device",
    "trainer.log_every_n_steps",
    "trainer.checkpoint",
    "trainer.checkpoint_every_n_steps",
    "logger",
    "paths",
    "tags",
    "extras",  # printing the config tree or not
    "lr_find",
    "data.root",
    "data.val_root",
    "data.test_root",  # held out: training never reads it
    "data.stats_dir",
    "data.cache_dir",
    "data.cache_images",
    "data.cache_max_gb",
    "data.cache_on_disk",
    "data.about",
    "model.weights",
)


@dataclass
class Start:
    checkpoint: dict[str, Any] | None = None  # continue from this checkpoint ...
    source: Path | None = None  # ... read from this file
    in_place: bool = False  # the records in this run dir are the run's own (keep them)
    finished: dict[str, Any] | None = None  # the summary of a run with nothing left to do


def describe(run_dir: Path) -> str | None:
    """What `run_dir` holds ("a completed run, 5 epochs"), or None when it holds no run."""
    summary = read_json(run_dir / SUMMARY_FILE)
    if summary is not None:
        return f"a {summary.get('status', '?')} run, {summary.get('epochs_completed', 0)} epochs"
    if (run_dir / METRICS_FILE).is_file() or (run_dir / LAST).is_file():
        return "a run's records"
    return None


def plan_start(run_dir: Path, resume: str | None, epochs: int, config: dict[str, Any]) -> Start:
    """How this run starts (see the module docstring); `config` is the run's resolved config."""
    held = describe(run_dir)
    if resume in (None, ""):
        if held:
            raise ConfigError(
                f"{run_dir} already holds {held}; continue it with trainer.resume=auto, "
                "or choose another hydra.run.dir / hydra.sweep.dir"
            )
        return Start()
    if resume == "auto":
        return plan_auto(run_dir, epochs, config)
    path = Path(resume).expanduser()
    source = path / LAST if path.is_dir() else path
    in_place = source.resolve().is_relative_to(run_dir.resolve())
    if held and not in_place:
        raise ConfigError(
            f"{run_dir} already holds {held}; resuming {resume} into it would mix two runs: "
            "choose another hydra.run.dir"
        )
    return resume_from(source, epochs, config, in_place)


def plan_auto(run_dir: Path, epochs: int, config: dict[str, Any]) -> Start:
    summary = read_json(run_dir / SUMMARY_FILE) or {}
    source = run_dir / LAST
    done = summary.get("status") in FINISHED and (
        summary.get("status") == "diverged" or summary.get("epochs_completed", 0) >= epochs
    )
    if source.is_file():
        checkpoint = load_checkpoint(source)
        check_same_config(checkpoint["config"], config, source)
        if done:
            return Start(finished=summary)
        # A checkpoint with every epoch but no final summary (killed just after writing it):
        # resuming it trains nothing and writes the summary.
        return resume_from(
            source, epochs, config, in_place=True, checkpoint=checkpoint, finish=True
        )
    started_with = started_config(run_dir)
    if started_with is not None and describe(run_dir):
        # No checkpoint to compare with: the run's own .hydra/config.yaml says what it trained.
        # A finished run of another config would be reported as this one's result, and a
        # fresh start would replace its records: refuse both.
        check_same_config(started_with, config, run_dir / HYDRA_CONFIG)
    if done:
        return Start(finished=summary)
    if summary.get("status") == "completed":
        raise ConfigError(
            f"trainer.resume=auto: {run_dir} holds a completed {summary.get('epochs_completed')}"
            f"-epoch run without a checkpoint (trainer.checkpoint=false): it cannot train to "
            f"trainer.epochs={epochs}; choose another hydra.run.dir"
        )
    return Start(in_place=True)  # killed before its first checkpoint, or failed: start over


def started_config(run_dir: Path) -> dict[str, Any] | None:
    """The config `run_dir`'s run was started with (its `.hydra/config.yaml`, resolved), or
    None without one. The resumable keys are left out before resolving: `paths` interpolates
    Hydra's runtime values, which only the run that wrote the file had."""
    path = run_dir / HYDRA_CONFIG
    if not path.is_file():
        return None
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    for key in RESUMABLE_KEYS:
        *parents, leaf = key.split(".")
        node = saved
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    try:
        return OmegaConf.to_container(OmegaConf.create(saved), resolve=True)  # type: ignore[return-value]
    except Exception:  # an interpolation only that run could resolve: compare as written
        return saved  # type: ignore[return-value]


def resume_from(
    source: Path,
    epochs: int,
    config: dict[str, Any],
    in_place: bool,
    checkpoint: dict[str, Any] | None = None,
    finish: bool = False,
) -> Start:
    """`finish`: a checkpoint with all of `epochs` done is accepted (trainer.resume=auto)."""
    checkpoint = checkpoint or load_checkpoint(source)
    check_same_config(checkpoint["config"], config, source)
    if epochs < checkpoint["epoch"] or (epochs == checkpoint["epoch"] and not finish):
        raise ConfigError(
            f"trainer.epochs={epochs}: the checkpoint {source} has {checkpoint['epoch']} epochs "
            "already; resume with more"
        )
    return Start(checkpoint=checkpoint, source=source, in_place=in_place)


def check_same_config(saved: dict[str, Any], config: dict[str, Any], source: Path) -> None:
    changed = replaced_nodes_first(config_differences(saved, config))
    if changed:
        shown = ", ".join(f"{k} ({_show(a)} -> {_show(b)})" for k, a, b in changed[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise ConfigError(
            f"trainer.resume: this config differs from the one {source} was trained with in "
            f"{shown}{more}; resume with the same model, optimizer, scheduler and data (keys that "
            "may change: docs/reliability.md), or start a new run"
        )


IDENTITY = ("_target_", "name")  # a node whose `_target_` or `name` differs is another thing


def replaced_nodes_first(changed: list[tuple[str, Any, Any]]) -> list[tuple[str, Any, Any]]:
    """A node replaced as a whole (`optimizer=adam`, `scheduler=cosine`) is named by the key
    that says so (`scheduler._target_ ('lrlab.optim.schedules.OneCycle' -> 'lrlab.optim.schedules.Cosine')`), not by its other keys."""
    replaced = {k.rpartition(".")[0] for k, _, _ in changed if k.rpartition(".")[2] in IDENTITY}
    return [
        change
        for change in changed
        if change[0].rpartition(".")[2] in IDENTITY
        or not any(change[0].startswith(f"{node}.") for node in replaced if node)
    ]


def config_differences(saved: dict[str, Any], config: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, saved value, new value) for each key that differs, except the resumable ones."""
    a, b = _flatten(saved), _flatten(config)
    keys = sorted(set(a) | set(b))
    return [
        (k, a.get(k, _ABSENT), b.get(k, _ABSENT))
        for k in keys
        if a.get(k, _ABSENT) != b.get(k, _ABSENT)
        and not any(k == r or k.startswith(r + ".") for r in RESUMABLE_KEYS)
    ]


_ABSENT = object()


def _show(value: Any) -> str:
    return "absent" if value is _ABSENT else repr(value)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}
