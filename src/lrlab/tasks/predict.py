"""`python eval.py mode=predict run_dir=... predict_dir=...`: class probabilities of a folder
of images, with the run's evaluation transform, written to a CSV (one row per image)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from lrlab.data.folder import IMG_EXTENSIONS
from lrlab.data.transforms import load_rgb
from lrlab.errors import ConfigError
from lrlab.tasks.evaluate import probabilities, restore_run

log = logging.getLogger(__name__)


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ConfigError(f"predict_dir={str(folder)!r} is not a directory")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise ConfigError(
            f"predict_dir={str(folder)!r} holds no images ({' '.join(IMG_EXTENSIONS)})"
        )
    return files


def predict(cfg: DictConfig) -> Path:
    """Write `predict_csv` (path, predicted, one probability column per class); return it."""
    import pandas as pd

    folder = Path(cfg.predict_dir).expanduser()
    files = image_files(folder)
    run = restore_run(cfg)
    transform = run.sets.eval_transform
    if transform is None:
        raise ConfigError(
            f"mode=predict needs a data set of image files; {run.run_config.data.get('name')!r} "
            "has no image transform"
        )
    mode = "L" if run.sets.in_channels == 1 else "RGB"
    batch_size = cfg.batch_size or int(run.run_config.data.batch_size)

    def batches():
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            images = [transform(load_rgb(str(p)).convert(mode)) for p in chunk]
            yield torch.stack(images), torch.zeros(len(chunk), dtype=torch.long)

    probs, _ = probabilities(run.model, batches(), run.device, cfg.tta)
    names = run.sets.class_names
    table = pd.DataFrame(probs.numpy(), columns=[f"p_{c}" for c in names])
    table.insert(0, "predicted", [names[i] for i in probs.argmax(1).tolist()])
    table.insert(0, "path", [str(p.relative_to(folder)) for p in files])
    out = Path(cfg.run_dir).expanduser() / cfg.predict_csv
    table.to_csv(out, index=False)
    log.info("%d predictions -> %s", len(files), out)
    print(f"{len(files)} predictions ({run.key.split('_', 1)[1]} weights) -> {out}")
    return out
