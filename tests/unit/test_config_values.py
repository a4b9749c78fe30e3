"""Configs show their values: every option of every group states its keys and values in its
YAML (readable without Python), and no default is written twice (a schema field with a value
of its own that a YAML states again, or an experiment restating what its groups already say).

conf/scheduler/** is left to the schedule configs' own tests."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from tests.helpers import CONF

# Groups whose option lands at cfg.<group> (the others are `@package _global_`).
PACKAGED = ["augment", "callbacks", "data", "logger", "lr_find", "model", "optimizer", "optimizer_switch",
            "paths", "resizing", "trainer"]  # fmt: skip
GLOBAL = ["experiment", "debug", "recipe", "hparams_search"]
OPTIONS = [(g, p.stem) for g in PACKAGED for p in sorted((CONF / g).glob("*.yaml"))]
EXPERIMENTS = [(g, p.stem) for g in GLOBAL for p in sorted((CONF / g).glob("*.yaml"))]


def compose_with(overrides: list[str], hydra: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra)


def leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of every leaf (a list is one value), interpolations unresolved."""
    if isinstance(node, DictConfig) and not node._is_none():
        out: dict[str, Any] = {}
        for key, child in node.items_ex(resolve=False):
            out.update(leaves(child, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    if isinstance(node, dict):
        out = {}
        for key, child in node.items():
            out.update(leaves(child, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    if isinstance(node, ListConfig):
        return {prefix.rstrip("."): OmegaConf.to_container(node, resolve=False)}
    return {prefix.rstrip("."): None if isinstance(node, DictConfig) else node}


def stated(group: str, option: str) -> dict[str, Any]:
    """The keys (dotted) and values an option's YAML states, its includes of other YAML files
    (`imagefolder`, `/model/training@_here_: default`, `/optimizer@optimizer: sgd`) too; schema
    includes (`/schema/...`) state nothing."""
    text = yaml.safe_load((CONF / group / f"{option}.yaml").read_text()) or {}
    out: dict[str, Any] = {}
    for entry in text.pop("defaults", []):
        name, choice = next(iter(entry.items())) if isinstance(entry, dict) else (entry, None)
        name = name.removeprefix("override ")
        if name == "_self_" or name.startswith("/schema/"):
            continue
        where, _, package = name.partition("@")
        where = where.lstrip("/") if where.startswith("/") else f"{group}/{where}"
        sub_group, sub_option = (where, choice) if choice else where.rsplit("/", 1)
        prefix = "" if package in ("", "_here_") else f"{package}."
        out.update({f"{prefix}{k}": v for k, v in stated(sub_group, sub_option).items()})
    out.update(leaves(text))
    return out


def schema_defaults(schema: type, prefix: str = "") -> dict[str, Any]:
    """Dotted field -> its own default, for every field of `schema` that has a value of its own
    (a nested schema, Optional or not, is a node: its fields are looked at instead)."""
    out = {}
    types = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        kind = types[f.name]
        if any(dataclasses.is_dataclass(t) for t in (kind, *typing.get_args(kind))):
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if default is not dataclasses.MISSING and default != MISSING:
            out[f"{prefix}{f.name}"] = default
    return out


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_states_its_keys_and_no_default_twice(group, option):
    cfg = compose_with([f"{group}={option}"])
    node = cfg[group]
    composed = leaves(node)
    written = stated(group, option)
    unstated = sorted(k for k in composed if k not in written and composed[k] is not None)
    # optimizer_switch's schedule is a conf/scheduler option, augment's batch part an option
    # of conf/augment/batch/: each shown in its own file
    unstated = [
        k
        for k in unstated
        if not (group == "optimizer_switch" and k.startswith("scheduler."))
        and not (group == "augment" and k.split(".")[0] == "batch")
    ]
    assert not unstated, f"conf/{group}/{option}.yaml does not show {unstated} (set elsewhere)"
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        twice = sorted(set(schema_defaults(schema)) & set(written))
        assert not twice, f"{schema.__name__} and conf/{group}/{option}.yaml both state {twice}"


def test_the_root_config_states_its_own_keys_and_the_root_schema_none():
    from lrlab.tasks.config import TrainConfig

    own = {k for k in compose_with([]) if k not in PACKAGED and k not in ("scheduler",)}
    text = yaml.safe_load((CONF / "train.yaml").read_text())
    assert own <= set(text), f"train.yaml does not show {sorted(own - set(text))}"
    assert not set(schema_defaults(TrainConfig)) & set(text)


def test_schemas_of_the_shown_groups_hold_no_values():
    """The YAML is the one source of every value: the schemas keep types and checks only."""
    from lrlab.tasks.config import SCHEMAS, TrainConfig

    schemas = [
        TrainConfig,
        *(s for g, opts in SCHEMAS.items() if g != "scheduler" for s in opts.values()),
    ]
    for schema in schemas:
        assert schema_defaults(schema) == {}, f"{schema.__name__} has values of its own"


@pytest.mark.parametrize(("group", "option"), EXPERIMENTS, ids=[f"{g}={o}" for g, o in EXPERIMENTS])
def test_experiments_set_only_what_differs_from_their_groups(group, option):
    """An experiment (or recipe, debug or search preset) that restates a value its groups
    already give is a second copy of that default."""
    prefix = "+" if group == "recipe" else ""
    exp = compose_with([f"{prefix}{group}={option}"], hydra=True)
    choices = OmegaConf.to_container(exp.hydra.runtime.choices)
    base_overrides = [
        f"{g}={c}" for g, c in choices.items()
        if c is not None and g in (*PACKAGED, "scheduler", "scheduler/params")
    ]  # fmt: skip
    base = compose_with(base_overrides)
    text = yaml.safe_load((CONF / group / f"{option}.yaml").read_text()) or {}
    text.pop("defaults", None)
    text.pop("hydra", None)  # the sweep's own settings
    base_leaves = leaves(base)
    for key, value in leaves(text).items():
        if key in base_leaves and key != "tags":
            assert base_leaves[key] != value, (
                f"conf/{group}/{option}.yaml restates {key}={value!r}, already the value of "
                "its groups (set only what differs)"
            )


def test_the_check_catches_a_value_stated_twice(tmp_path, monkeypatch):
    """The checker itself: a schema field with a value of its own, stated in a YAML, is found."""

    @dataclasses.dataclass
    class WithDefault:
        epochs: int = 5
        device: str = MISSING

    assert schema_defaults(WithDefault) == {"epochs": 5}
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "o.yaml").write_text("epochs: 5\ndevice: cpu\n")
    monkeypatch.setattr(f"{__name__}.CONF", Path(tmp_path))
    assert set(schema_defaults(WithDefault)) & set(stated("g", "o")) == {"epochs"}
