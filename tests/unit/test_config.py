"""The composed config: every option composes, unknown keys and wrong types refused with one
line naming them, and user pieces plugged in by `_target_`."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from lrlab.errors import ConfigError
from lrlab.tasks.config import check_config
from tests.helpers import CONF, compose_cfg

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
# What an option needs besides itself to compose into a run that passes check_config.
NEEDS = {
    ("data", "imagefolder"): ["data.root=/data/x"],
    ("resizing", "progressive"): ["trainer.epochs=10"],  # 5 epochs at 32 px, then 64 px
    ("optimizer_switch", "adam_to_sgd"): ["trainer.epochs=10"],  # the switch after epoch 5
    ("recipe", "adam_then_sgd"): ["trainer.epochs=10"],
}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_of_every_group_composes_and_checks(tmp_path, group, option):
    prefix = "+" if group == "recipe" else ""  # recipes are not in train.yaml's defaults
    overrides = [f"{prefix}{group}={option}", *NEEDS.get((group, option), [])]
    if group == "experiment" or option == "flowers":
        overrides.append("data.root=/data/flowers")
    cfg = compose_cfg(overrides, tmp_path)
    check_config(cfg)  # types, unknown keys and every schema's range checks


@pytest.mark.parametrize("config_name", ["train", "find_lr"])
def test_both_entry_configs_compose(tmp_path, config_name):
    check_config(compose_cfg([], tmp_path, config_name=config_name))


@pytest.mark.parametrize(
    ("overrides", "key", "hint"),
    [
        (["+trainer.epoch=3"], "trainer.epoch", "trainer.epochs"),
        (["+trainer.grad_clp=1.0"], "trainer.grad_clp", "trainer.grad_clip"),
        (["+foo=1"], "foo", None),
        (["+optimizer.momentun=0.9", "optimizer=sgd"], "optimizer.momentun", "optimizer.momentum"),
        (["+model.chanels=[8]"], "model.chanels", "model.channels"),
        (
            ["callbacks=early_stopping", "+callbacks.early_stopping.patiense=2"],
            "callbacks.early_stopping.patiense",
            "callbacks.early_stopping.patience",
        ),
    ],
)
def test_keys_added_with_plus_are_checked(tmp_path, overrides, key, hint):
    """Hydra lets `+key=value` add any key; check_config refuses the unknown ones."""
    try:
        cfg = compose_cfg(overrides, tmp_path)
    except ConfigCompositionException:
        assert key is None  # refused by Hydra already (the group/struct) is fine too
        return
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "\n" not in message
    if key is not None:
        assert message.startswith(f"{key} is not a key of")
    if hint is not None:
        assert f"did you mean {hint}?" in message


@pytest.mark.parametrize(
    "override",
    ["trainer.epoch=3", "trainer.epochs=abc", "model.lr_mult=abc", "data.batch_size=1.5",
     "model.frozen_bn_eval=maybe", "lr_find.num_it=many"],
)  # fmt: skip
def test_unknown_keys_and_wrong_types_fail_at_composition(tmp_path, override):
    with pytest.raises(ConfigCompositionException):
        compose_cfg([override], tmp_path)


def test_a_misspelt_key_in_an_experiment_file_is_refused(tmp_path):
    """A YAML typo (not only a command-line one): the schema refuses it while composing."""
    from hydra import compose, initialize_config_dir

    extra = tmp_path / "conf" / "experiment"
    extra.mkdir(parents=True)
    (extra / "typo.yaml").write_text("# @package _global_\ntrainer:\n  grad_clp: 1.0\n")
    with (
        initialize_config_dir(config_dir=str(CONF), version_base="1.3"),
        pytest.raises(ConfigCompositionException) as err,
    ):
        compose("train", [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=typo"])
    assert "grad_clp" in str(err.value.__cause__ or err.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=0", "trainer.epochs must be an integer >= 1, got 0"),
        ("data.val_fraction=1.5", "data.val_fraction must be in (0, 1), got 1.5"),
        ("model.dropout=1.0", "model.dropout must be in [0, 1), got 1.0"),
        ("lr_find.smooth_beta=1", "lr_find.smooth_beta must be in [0, 1)"),
        ("trainer.label_smoothing=-0.1", "trainer.label_smoothing must be in [0, 1)"),
        ("trainer.checkpoint_every_n_steps=0", "trainer.checkpoint_every_n_steps must be null"),
        ("scheduler.pct_start=half", "scheduler.pct_start='half': must be in (0, 1)"),
        ("callbacks=[ema,early_stopping]", None),  # valid: composes and checks
    ],
)
def test_range_checks_live_in_the_schemas(tmp_path, override, message):
    cfg = compose_cfg([override], tmp_path)
    if message is None:
        check_config(cfg)
        return
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    assert str(err.value).startswith(message)


def test_a_callback_without_target_is_refused(tmp_path):
    cfg = compose_cfg([], tmp_path)
    with open_dict(cfg):
        cfg.callbacks = {"mine": {"every": 2}}
    with pytest.raises(ConfigError, match="callbacks.mine needs a _target_"):
        check_config(cfg)


def test_a_users_model_data_set_and_callback_train_by_target(tmp_path):
    """A new model, data set or callback is a Python file plus a config: no dispatcher edit."""
    from lrlab.tasks.train import train
    from lrlab.tracking import read_jsonl

    cfg = compose_cfg(["trainer.epochs=2", "trainer.checkpoint=false"], tmp_path / "run")
    with open_dict(cfg):
        # conf/model/<mine>.yaml: `defaults: [/model/training@_here_: default, _self_]` + these
        training = OmegaConf.load(CONF / "model" / "training" / "default.yaml")
        cfg.model = OmegaConf.merge(training, {"_target_": "tests.helpers.toy.TinyNet", "width": 4})
        cfg.data = OmegaConf.create(
            {"_target_": "tests.helpers.toy.blobs", "name": "blobs", "batch_size": 16, "n": 96}
        )
        cfg.callbacks = {"count": {"_target_": "tests.helpers.toy.CountSteps"}}
    check_config(cfg)
    summary = train(cfg)
    assert (
        summary["status"] == "completed" and summary["steps"] == 2 * 5
    )  # 72 train images, batches of 16
    assert (tmp_path / "run" / "steps.txt").read_text() == str(summary["steps"])
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["epoch"] for r in rows if r["type"] == "epoch"] == [1, 2]
    # a misspelt argument of the user's model is refused like any other unknown key
    with open_dict(cfg):
        cfg.model.widht = 4
    with pytest.raises(ConfigError, match="model.widht is not a key of model; did you mean"):
        check_config(cfg)
    # a model config without the training keys is told where they are, in one line
    with open_dict(cfg):
        cfg.model = OmegaConf.create({"_target_": "tests.helpers.toy.TinyNet", "width": 4})
        cfg.paths.output_dir = str(tmp_path / "bare")
    with pytest.raises(ConfigError, match=r"model.freeze is not set: .*/model/training@_here_"):
        train(cfg)


def test_schemas_reach_the_root_and_hydra_sees_them(tmp_path):
    cfg = compose_cfg(["data=flowers", "model=timm"], tmp_path)
    assert OmegaConf.get_type(cfg.trainer).__name__ == "TrainerConfig"
    assert OmegaConf.get_type(cfg.data).__name__ == "ImageFolderConfig"
    assert OmegaConf.get_type(cfg.model).__name__ == "TimmConfig"
    assert cfg.scheduler._target_ == "lrlab.optim.schedules.OneCycle"  # checked by its class
    assert cfg.data.name == "flowers" and cfg.data.image_size == 64  # imagefolder.yaml's


def test_conf_dir_is_where_tests_look():
    assert (CONF / "train.yaml").is_file() and Path(CONF).name == "conf"


def test_the_optimizer_comparison_trains_the_flowers_fast_model_and_data(tmp_path):
    """The seed study grid compares optimizers on the strong recipe's model and data: the two
    experiments compose to the same data, model and epochs (only optimizer/schedule differ)."""
    fast = compose_cfg(["experiment=flowers_fast"], tmp_path)
    grid = compose_cfg(["experiment=optimizer_comparison"], tmp_path)
    assert OmegaConf.to_container(grid.data) == OmegaConf.to_container(fast.data)
    assert OmegaConf.to_container(grid.model) == OmegaConf.to_container(fast.model)
    assert grid.trainer.epochs == fast.trainer.epochs
    assert fast.optimizer._target_ == "torch.optim.AdamW" and fast.optimizer.lr == 3e-3
