"""Held-out evaluation: training never reads the test split; eval.py evaluates a run's
last / best / EMA weights on validation or test (flip TTA), writes eval.json and the confusion
matrix, predicts a folder of images, and lrlab-compare shows test beside validation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from torch.utils.data import DataLoader, Dataset

from lrlab.data import DataSets
from lrlab.errors import ConfigError
from lrlab.tasks.train import train
from tests.helpers import CONF, compose_cfg
from tests.helpers.toy import blobs


class SplitRead(AssertionError):
    pass


class Poisoned(Dataset):
    """A test split that fails the run the moment anything reads it."""

    def __len__(self) -> int:
        raise SplitRead("training read the test split (len)")

    def __getitem__(self, index: int):
        raise SplitRead("training read the test split")


def poisoned_blobs(n: int = 96) -> DataSets:
    sets = blobs(n, image_size=8)
    sets.test = Poisoned()
    return sets


def eval_cfg(run_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="eval", overrides=[f"run_dir={run_dir}", *overrides])


def test_no_training_time_choice_reads_the_test_split(tmp_path):
    """Best checkpoint, early stopping, EMA and optimizer.lr=auto select on validation."""
    cfg = compose_cfg(
        ["callbacks=[best_checkpoint,early_stopping,ema]", "optimizer.lr=auto",
         "lr_find.num_it=8", "trainer.epochs=2"],
        tmp_path / "run",
    )  # fmt: skip
    with open_dict(cfg):
        cfg.data = OmegaConf.create(
            {"_target_": "tests.unit.test_eval.poisoned_blobs", "name": "p", "batch_size": 16}
        )
    summary = train(cfg)
    assert summary["status"] == "completed" and summary["lr_find"]["lr"] > 0
    assert summary[cfg.optimized_metric] == summary["best_val_acc"]  # what Optuna maximises
    # ... and the poisoned split is really there for eval.py to read:
    with pytest.raises(SplitRead):
        from lrlab.tasks.evaluate import evaluate_run

        evaluate_run(eval_cfg(tmp_path / "run"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """Digits with a held-out test split, 2 epochs, best checkpoint and EMA."""
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    cfg = compose_cfg(
        ["data.test_fraction=0.2", "trainer.epochs=2", "callbacks=[best_checkpoint,ema]",
         "callbacks.ema.decay=0.9"],
        run_dir,
    )  # fmt: skip
    assert train(cfg)["status"] == "completed"
    return run_dir


def test_eval_on_test_matches_an_independent_evaluation(trained_run):
    from lrlab.data.loaders import load_datasets
    from lrlab.engine.step import TrainStep, evaluate
    from lrlab.models import build_model
    from lrlab.tasks.evaluate import evaluate_run

    result = evaluate_run(eval_cfg(trained_run, "checkpoint=last"))
    ckpt = torch.load(trained_run / "checkpoints" / "last.ckpt", weights_only=True)
    run_cfg = OmegaConf.create(ckpt["config"])
    sets = load_datasets(run_cfg.data)
    model = build_model(run_cfg.model, 10, 1, sets.image_size)
    model.load_state_dict(ckpt["model"])
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"))
    loss, acc = evaluate(model, DataLoader(sets.test, batch_size=50), step)
    assert result["n"] == len(sets.test) == 360
    assert result["accuracy"] == pytest.approx(acc, abs=1e-9)
    assert result["loss"] == pytest.approx(loss, rel=1e-4)
    confusion = torch.tensor(result["confusion_matrix"])
    assert confusion.sum() == 360 and confusion.diag().sum() / 360 == pytest.approx(acc)
    per_class = result["per_class_accuracy"]
    assert list(per_class) == [str(d) for d in range(10)]
    assert per_class["3"] == pytest.approx((confusion[3, 3] / confusion[3].sum()).item())
    assert (trained_run / "confusion_test_last.png").stat().st_size > 1000


def test_each_evaluation_is_its_own_entry_of_eval_json(trained_run):
    from lrlab.tasks.evaluate import evaluate_run

    results = {
        key: evaluate_run(eval_cfg(trained_run, *overrides))
        for key, overrides in {
            "val_best_ema": ["checkpoint=best", "split=val", "ema=true"],
            "test_last_ema": ["ema=true"],
            "test_last_tta": ["tta=true"],
            "test_last": [],
        }.items()
    }
    entries = json.loads((trained_run / "eval.json").read_text())
    assert set(results) <= set(entries)
    summary = json.loads((trained_run / "summary.json").read_text())
    # training validated the EMA weights: the best checkpoint's EMA weights on validation
    # give the run's best validation accuracy
    assert results["val_best_ema"]["accuracy"] == pytest.approx(summary["best_val_acc"])
    assert results["val_best_ema"]["epoch"] == summary["best_epoch"]
    assert results["test_last_ema"]["loss"] != results["test_last"]["loss"]  # other weights
    assert results["test_last_tta"]["loss"] != results["test_last"]["loss"]  # flips averaged
    assert results["test_last_tta"]["tta"] and results["test_last_ema"]["ema"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["split=train"], "split='train' is not one of"),
        (["checkpoint=best", "run_dir={tmp}"], "does not exist"),
        (["mode=predict"], "mode=predict needs predict_dir"),
        (["run_dir={tmp}/nowhere"], "is not a directory"),
    ],
)
def test_bad_eval_settings_are_one_line_errors(trained_run, tmp_path, overrides, message):
    from lrlab.cli.jobs import eval_job

    (tmp_path / "checkpoints").mkdir()
    cfg = eval_cfg(trained_run, *(o.format(tmp=tmp_path) for o in overrides))
    with pytest.raises(SystemExit) as e:
        eval_job(cfg)
    assert e.value.code == 2


def test_ema_weights_of_a_run_without_ema_are_refused(tmp_path):
    from lrlab.tasks.evaluate import evaluate_run

    cfg = compose_cfg(["trainer.epochs=1", "trainer.limit_train_batches=2"], tmp_path / "r")
    train(cfg)
    with pytest.raises(ConfigError, match="holds no EMA weights"):
        evaluate_run(eval_cfg(tmp_path / "r", "ema=true", "split=val"))
    with pytest.raises(ConfigError, match="holds no test split: train with data.test_fraction"):
        evaluate_run(eval_cfg(tmp_path / "r"))


def test_predict_writes_class_probabilities_for_a_folder(tmp_path, image_folder):
    from lrlab.tasks.predict import predict

    run_dir = tmp_path / "run"
    cfg = compose_cfg(
        ["data=imagefolder", f"data.root={image_folder}", "data.image_size=16",
         "trainer.epochs=1"],
        run_dir,
    )  # fmt: skip
    train(cfg)
    out = predict(eval_cfg(run_dir, "mode=predict", f"predict_dir={image_folder / 'dog'}"))
    table = pd.read_csv(out)
    assert len(table) == 10 and list(table.columns) == ["path", "predicted", "p_cat", "p_dog",
                                                         "p_fox"]  # fmt: skip
    assert table[["p_cat", "p_dog", "p_fox"]].sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert set(table["predicted"]) <= {"cat", "dog", "fox"}
    # the data moved since training: +data.root points the run's data config at it
    from lrlab.tasks.evaluate import evaluate_run

    moved = image_folder.rename(tmp_path / "moved")
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate_run(eval_cfg(run_dir, "split=val"))
    assert evaluate_run(eval_cfg(run_dir, "split=val", f"+data.root={moved}"))["n"] == 6


def test_compare_shows_test_beside_validation(trained_run, tmp_path):
    from lrlab.analysis import compare
    from lrlab.analysis.report import group_table
    from lrlab.tasks.evaluate import evaluate_run

    result = evaluate_run(eval_cfg(trained_run, "checkpoint=best"))
    table = group_table(compare([trained_run]))
    header, _, row = table.splitlines()[:3]
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[columns.index("test acc (eval.py)")] == f"{result['accuracy']:.4f}"
    assert columns.index("test acc (eval.py)") == columns.index("best val_acc") + 2
