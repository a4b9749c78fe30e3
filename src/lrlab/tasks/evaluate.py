"""The `eval` task (`python eval.py run_dir=...`): a run's checkpoint on its validation or
held-out test split, after training. Training never reads the test split; only this does.

Writes into the run dir: `eval.json` (one entry per evaluation: accuracy, loss, per-class
accuracy, ...; keyed `<split>_<checkpoint>[_ema][_tta]`) and `confusion_<key>.png`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import MISSING, DictConfig, OmegaConf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lrlab.data.loaders import DataSets, load_datasets
from lrlab.engine.checkpoint import load_checkpoint
from lrlab.errors import ConfigError
from lrlab.models import build_model
from lrlab.tracking.evaluations import add_evaluation
from lrlab.utils import select_device

log = logging.getLogger(__name__)

SPLITS = ("val", "test")
MODES = ("evaluate", "predict")


@dataclass
class EvalConfig:
    """The root of conf/eval.yaml."""

    run_dir: str = MISSING  # a training run's dir (its checkpoints/ and config)
    checkpoint: str = MISSING  # last | best (callbacks=best_checkpoint) | a .ckpt file
    ema: bool = MISSING  # the checkpoint's EMA weights (callbacks=ema) instead of the raw ones
    split: str = MISSING  # test (held out) | val
    tta: bool = MISSING  # average the probabilities of the image and its horizontal flip
    mode: str = MISSING  # evaluate | predict (class probabilities of predict_dir's images)
    predict_dir: str | None = MISSING  # predict: a folder of images (searched recursively)
    predict_csv: str = MISSING  # predict: the CSV, relative to run_dir
    batch_size: int | None = MISSING  # null: the run's data.batch_size
    num_workers: int = MISSING
    device: str = MISSING
    data: dict[str, Any] = MISSING  # changes to the run's data config

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ConfigError(f"split={self.split!r} is not one of {SPLITS}")
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} is not one of {MODES}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 or null, got {self.batch_size}")
        if self.mode == "predict" and not self.predict_dir:
            raise ConfigError("mode=predict needs predict_dir=/path/to/images")


@dataclass
class Restored:
    """A trained run, rebuilt: its config, data sets and model with the chosen weights."""

    run_config: DictConfig
    sets: DataSets
    model: nn.Module
    device: torch.device
    key: str  # e.g. test_best_ema_tta
    epoch: int


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    if checkpoint in ("last", "best"):
        path = run_dir / "checkpoints" / f"{checkpoint}.ckpt"
        if not path.is_file():
            hint = " (train with callbacks=best_checkpoint)" if checkpoint == "best" else ""
            raise ConfigError(f"checkpoint={checkpoint}: {path} does not exist{hint}")
        return path
    return Path(checkpoint).expanduser()


def model_weights(ckpt: dict[str, Any], ema: bool, path: Path) -> dict[str, torch.Tensor]:
    """The raw weights, or the EMA callback's average (AveragedModel: `module.` + name)."""
    if not ema:
        return ckpt["model"]
    average = next((s for k, s in ckpt["callbacks"].items() if k.split(".")[0] == "EMA"), None)
    if not average:
        raise ConfigError(f"ema=true: {path} holds no EMA weights (train with callbacks=ema)")
    prefix = "module."
    return {k[len(prefix) :]: v for k, v in average.items() if k.startswith(prefix)}


def restore_run(cfg: DictConfig) -> Restored:
    run_dir = Path(cfg.run_dir).expanduser()
    if not run_dir.is_dir():
        raise ConfigError(f"run_dir={cfg.run_dir!r} is not a directory")
    path = checkpoint_path(run_dir, cfg.checkpoint)
    ckpt = load_checkpoint(path)
    run_config = OmegaConf.create(ckpt["config"])
    data_cfg = run_config.data
    if "cache_images" in data_cfg:  # evaluation reads each image once
        data_cfg.cache_images = False
    data_cfg = OmegaConf.merge(data_cfg, cfg.data or {})
    sets = load_datasets(data_cfg)
    model_cfg = run_config.model
    if "pretrained" in model_cfg:  # the checkpoint has the weights: no download
        model_cfg.pretrained = False
    model = build_model(model_cfg, len(sets.class_names), sets.in_channels, sets.image_size)
    model.load_state_dict(model_weights(ckpt, cfg.ema, path))
    device = select_device(cfg.device)
    name = cfg.checkpoint if cfg.checkpoint in ("last", "best") else path.stem
    key = "_".join([cfg.split, name] + ["ema"] * cfg.ema + ["tta"] * cfg.tta)
    return Restored(run_config, sets, model.to(device).eval(), device, key, int(ckpt["epoch"]))


def split_dataset(sets: DataSets, split: str, data_name: str) -> Dataset:
    if split == "val":
        return sets.val
    if sets.test is None:
        raise ConfigError(
            f"data set {data_name!r} holds no test split: train with data.test_fraction=0.1 "
            "(or data.test_root=... for image folders), or evaluate split=val"
        )
    return sets.test


@torch.inference_mode()
def probabilities(
    model: nn.Module, batches: Any, device: torch.device, tta: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities (with `tta`: averaged with the flipped image's) and labels."""
    probs, labels = [], []
    for x, y in batches:
        x = x.to(device)
        p = model(x).float().softmax(1)
        if tta:
            p = (p + model(x.flip(-1)).float().softmax(1)) / 2
        probs.append(p.cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(probs), torch.cat(labels)


def metrics(probs: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    n_classes = len(class_names)
    predicted = probs.argmax(1)
    confusion = torch.bincount(labels * n_classes + predicted, minlength=n_classes**2)
    confusion = confusion.reshape(n_classes, n_classes)  # rows: true class, columns: predicted
    per_class = confusion.diag() / confusion.sum(1).clamp(min=1)
    loss = nn.functional.nll_loss(probs.clamp(min=1e-12).log(), labels)
    return {
        "accuracy": (predicted == labels).sum().item() / len(labels),
        "loss": loss.item(),
        "n": len(labels),
        "per_class_accuracy": dict(zip(class_names, per_class.tolist(), strict=True)),
        "confusion_matrix": confusion.tolist(),
    }


def evaluate_run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate, write eval.json's entry and the confusion-matrix PNG; return the entry."""
    from lrlab.analysis.confusion import confusion_figure

    run = restore_run(cfg)
    data_name = str(run.run_config.data.get("name", run.run_config.data._target_))
    dataset = split_dataset(run.sets, cfg.split, data_name)
    batch_size = cfg.batch_size or int(run.run_config.data.batch_size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=cfg.num_workers)
    probs, labels = probabilities(run.model, loader, run.device, cfg.tta)
    result = {
        "split": cfg.split,
        "checkpoint": cfg.checkpoint,
        "epoch": run.epoch,
        "ema": bool(cfg.ema),
        "tta": bool(cfg.tta),
        **metrics(probs, labels, run.sets.class_names),
        "evaluated_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    run_dir = Path(cfg.run_dir).expanduser()
    png = run_dir / f"confusion_{run.key}.png"
    title = f"{data_name} {cfg.split}, {run.key}: accuracy {result['accuracy']:.4f}"
    confusion_figure(result["confusion_matrix"], run.sets.class_names, title).savefig(png)
    result["confusion_png"] = png.name
    path = add_evaluation(run_dir, run.key, result)
    log.info("%s: %s accuracy %.4f, loss %.4f (%s)", run_dir, run.key, result["accuracy"],
             result["loss"], path)  # fmt: skip
    return result
