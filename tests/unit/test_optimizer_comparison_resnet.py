"""The seed study's grid on experiment=flowers_resnet's model and data, in the seed's setup
(experiment=optimizer_comparison_seed) and under one schedule at each optimizer's own lr
(experiment=optimizer_comparison_tuned): they compose, every job checks, and they train what
flowers_resnet trains."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lrlab.tasks.config import check_config
from tests.helpers import CONF, compose_cfg

ROOT_OVERRIDES = ["data.root=/data/flowers"]
SEED_RECIPES = ["sgd_clr_seed", "adam", "adamax", "adagrad", "adadelta", "rmsprop", "adamw"]
OPTIMIZERS = ["sgd", "adam", "adamax", "adagrad", "adadelta", "rmsprop", "adamw"]


def sweep_params(experiment: str) -> dict[str, str]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", [f"experiment={experiment}"], return_hydra_config=True)
    return dict(cfg.hydra.sweeper.params)


@pytest.mark.parametrize(
    ("experiment", "key", "values"),
    [("optimizer_comparison_seed", "recipe", SEED_RECIPES),
     ("optimizer_comparison_tuned", "optimizer", OPTIMIZERS)],
)  # fmt: skip
def test_every_job_of_both_grids_composes_and_trains_the_resnet_recipe(
    tmp_path, experiment: str, key: str, values: list[str]
) -> None:
    params = sweep_params(experiment)
    assert params == {key: ",".join(values), "seed": "0,1,2"}  # 7 x 3 = 21 runs
    resnet = compose_cfg(["experiment=flowers_resnet", *ROOT_OVERRIDES], tmp_path)
    for value in values:
        cfg = compose_cfg([f"experiment={experiment}", f"{key}={value}", *ROOT_OVERRIDES], tmp_path)
        check_config(cfg)
        for part in ("data", "model"):
            assert OmegaConf.to_container(cfg[part]) == OmegaConf.to_container(resnet[part]), part
        assert cfg.trainer.epochs == resnet.trainer.epochs == 15
        assert cfg.optimizer._target_.lower().endswith(value.split("_")[0]), value


def test_the_seed_setup_keeps_the_seeds_lrs_and_its_clr(tmp_path) -> None:
    def job(recipe: str):
        return compose_cfg(["experiment=optimizer_comparison_seed", f"recipe={recipe}",
                            *ROOT_OVERRIDES], tmp_path)  # fmt: skip

    sgd = job("sgd_clr_seed")
    assert (sgd.optimizer._target_, sgd.optimizer.lr) == ("torch.optim.SGD", "auto")
    assert (
        sgd.scheduler._target_ == "lrlab.optim.schedules.CLR" and sgd.scheduler.mode == "triangular"
    )
    assert sgd.scheduler.step_size == 4.0 and sgd.scheduler.base_lr is None  # peak / 6
    assert (sgd.lr_find.start_lr, sgd.lr_find.end_lr, sgd.lr_find.num_it) == (1e-7, 0.1, 108)
    for recipe in SEED_RECIPES[1:]:
        cfg = job(recipe)
        default = OmegaConf.load(CONF / "optimizer" / f"{recipe}.yaml")
        assert cfg.scheduler._target_ == "lrlab.optim.schedules.Constant", recipe
        # the optimizer's own lr and weight decay, not flowers_resnet's AdamW settings
        assert cfg.optimizer.lr == default.lr, recipe
        assert cfg.optimizer.get("weight_decay") == default.get("weight_decay"), recipe


def test_the_tuned_grid_finds_each_lr_under_onecycle(tmp_path) -> None:
    for optimizer in OPTIMIZERS:
        cfg = compose_cfg(["experiment=optimizer_comparison_tuned", f"optimizer={optimizer}",
                           *ROOT_OVERRIDES], tmp_path)  # fmt: skip
        assert (
            cfg.optimizer.lr == "auto"
            and cfg.scheduler._target_ == "lrlab.optim.schedules.OneCycle"
        ), optimizer
        default = OmegaConf.load(CONF / "optimizer" / f"{optimizer}.yaml")
        assert cfg.optimizer.get("weight_decay") == default.get("weight_decay"), optimizer
