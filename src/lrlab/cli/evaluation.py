"""eval.py's job: evaluate (or predict) with the one-line errors of every lrlab command."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from lrlab.cli.jobs import run_job


def eval_job(cfg: DictConfig) -> dict[str, Any] | None:
    def task(cfg: DictConfig) -> dict[str, Any]:
        OmegaConf.to_object(cfg)  # the schema's range checks, before anything loads
        if cfg.mode == "predict":
            from lrlab.tasks.predict import predict

            return {"predictions": str(predict(cfg))}
        from lrlab.tasks.evaluate import evaluate_run

        result = evaluate_run(cfg)
        print(
            f"{cfg.split} accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
            f"({result['n']} images, {cfg.checkpoint} checkpoint of epoch {result['epoch']}"
            f"{', EMA' if cfg.ema else ''}{', flip TTA' if cfg.tta else ''}) -> {cfg.run_dir}"
        )
        return result

    return run_job(task, cfg)
