"""The first minute: the composed config as a tree at the start (extras.print_config), a
--help that lists the groups a user picks (not the schema/* groups) with examples."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from tests.helpers import CONF, ROOT, compose_cfg

HELP = OmegaConf.to_container(OmegaConf.load(CONF / "hydra" / "help" / "lrlab.yaml"))["template"]


def user_groups() -> dict[str, list[str]]:
    """conf/'s groups (folders, nested ones as a/b) and their options, hydra/ aside."""
    groups = {}
    for folder in sorted(p for p in CONF.rglob("*") if p.is_dir()):
        name = str(folder.relative_to(CONF))
        if name.split("/")[0] == "hydra":
            continue
        groups[name] = sorted(p.stem for p in folder.glob("*.yaml"))
    return groups


@pytest.mark.parametrize("group", sorted(user_groups()))
def test_help_lists_every_group_and_its_options(group):
    line = next((ln for ln in HELP.splitlines() if re.match(rf"\s+(.*, )?{group}=", ln)), None)
    assert line is not None, f"--help (conf/hydra/help/lrlab.yaml) does not list {group}="
    if "..." not in line and "(" not in line:  # a complete list: every option file is named
        listed = set(re.findall(r"[\w/]+", line.split("=", 1)[1]))
        assert set(user_groups()[group]) <= listed, f"{group}= misses options in --help"


def test_help_hides_the_schema_groups_and_gives_examples():
    assert "schema" not in HELP
    assert HELP.count("python train.py") >= 4


def run_job(cfg, capsys) -> str:
    from lrlab.cli.jobs import train_job

    train_job(cfg)
    return capsys.readouterr().out


def test_the_config_tree_is_printed_at_start_unless_switched_off(tmp_path, capsys):
    quick = ["trainer.epochs=1", "trainer.limit_train_batches=1", "trainer.checkpoint=false"]
    out = run_job(compose_cfg([*quick, "augment/batch=mixup"], tmp_path / "a"), capsys)
    assert out.startswith("CONFIG")
    branches = re.findall(r"^[├└]── (\w+)", out, flags=re.M)
    assert branches[:4] == ["data", "augment", "model", "optimizer"]
    assert "_target_: torchvision.transforms.v2.MixUp" in out
    quiet = compose_cfg([*quick, "extras.print_config=false"], tmp_path / "b")
    assert "CONFIG" not in run_job(quiet, capsys)


def test_train_help_shows_the_template(tmp_path):
    from tests.helpers.cli import cli_in_process

    result = cli_in_process("train.py", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "augment=" in result.stdout and "schema/" not in result.stdout
    assert "python eval.py run_dir=" in result.stdout
    assert ROOT.is_dir()
