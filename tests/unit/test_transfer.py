"""timm backbones with offline weights, layer-group freezing and fastai-style fine_tune."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lrlab.errors import ConfigError
from lrlab.models import build_model
from lrlab.models.freezing import Freezer, layer_groups
from lrlab.models.timm_backbone import PretrainedWeightsUnavailable
from lrlab.optim import build_scheduler
from lrlab.tasks.train import train
from tests.helpers import build_optimizer_from, freezer_from

TINY = "test_resnet"  # timm's tiny test ResNet: stem, layer1-4, fc (a few hundred k params)


def timm_cfg(make_cfg, *overrides: str):
    return make_cfg("model=timm", f"model.name={TINY}", *overrides)


def build(cfg, num_classes: int = 5, in_channels: int = 3, image_size: int = 32):
    return build_model(cfg.model, num_classes, in_channels, image_size)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> tuple[dict[str, torch.Tensor], dict[str, Path]]:
    """A 1000-class TINY model's weights as .safetensors and as a .pth state dict."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(123)
    state = timm.create_model(TINY).state_dict()
    folder = tmp_path_factory.mktemp("weights")
    files = {"safetensors": folder / f"{TINY}.safetensors", "pth": folder / f"{TINY}.pth"}
    save_file(state, str(files["safetensors"]))
    torch.save(state, files["pth"])
    return state, files


# --- pretrained weights -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_offline_pretrained_load_gives_the_file_backbone_and_a_fresh_head(
    make_cfg, pretrained, fmt
):
    state, files = pretrained
    cfg = timm_cfg(make_cfg, "model.pretrained=true", f"model.weights={files[fmt]}")
    model = build(cfg, num_classes=5)
    loaded = model.state_dict()
    backbone = [k for k in state if not k.startswith("fc.")]
    assert backbone and all(torch.equal(loaded[k], state[k]) for k in backbone)
    assert loaded["fc.weight"].shape == (5, state["fc.weight"].shape[1])
    assert loaded["fc.bias"].shape == (5,)
    # Without the file the backbone is random: the equality above is the file's doing.
    random = build(timm_cfg(make_cfg)).state_dict()
    assert not torch.equal(random["conv1.0.weight"], state["conv1.0.weight"])


class NotATensor:
    """An arbitrary pickled object: weights_only=True loading must refuse it."""


def test_torch_weight_files_load_with_weights_only(make_cfg, pretrained, tmp_path):
    state, _ = pretrained
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": state, "extra": NotATensor()}, unsafe)
    cfg = timm_cfg(make_cfg, "model.pretrained=true", f"model.weights={unsafe}")
    with pytest.raises(ConfigError, match=r"model\.weights=.*weights_only"):
        build(cfg)


def test_offline_without_file_or_cache_names_both_ways_out(make_cfg, monkeypatch, tmp_path):
    from huggingface_hub import constants

    # Offline (no network retries) with an empty cache, whether or not this machine is online.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = timm_cfg(make_cfg, "model.pretrained=true")
    with pytest.raises(PretrainedWeightsUnavailable) as info:
        build(cfg)
    message = str(info.value)
    assert "model.weights=" in message and "cache" in message and TINY in message
    assert isinstance(info.value, ConfigError)  # printed as one line by the entry points


def test_bad_weight_settings_are_config_errors(make_cfg, pretrained, tmp_path):
    _, files = pretrained
    with pytest.raises(ConfigError, match=r"model\.weights=.*model\.pretrained=false"):
        build(timm_cfg(make_cfg, f"model.weights={files['pth']}"))
    with pytest.raises(ConfigError, match=r"model\.weights=.*is not a file"):
        build(timm_cfg(make_cfg, "model.pretrained=true", f"model.weights={tmp_path}/nope.pth"))
    with pytest.raises(ConfigError, match=r"model\.name='no_such_net'"):
        build(make_cfg("model=timm", "model.name=no_such_net"))
    with pytest.raises(ConfigError, match=r"model\.name='resnet18\.bogus'.*tag"):
        build(make_cfg("model=timm", "model.name=resnet18.bogus"))


def test_a_weights_file_of_another_architecture_is_refused(make_cfg, tmp_path):
    import timm
    from safetensors.torch import save_file

    other = tmp_path / "convnext.safetensors"
    save_file(timm.create_model("test_convnext").state_dict(), str(other))
    cfg = timm_cfg(make_cfg, "model.pretrained=true", f"model.weights={other}")
    with pytest.raises(ConfigError, match="none of test_resnet's parameter names"):
        build(cfg)
    wider = tmp_path / "resnet18.safetensors"  # same names, other shapes
    save_file(timm.create_model("resnet18").state_dict(), str(wider))
    cfg = timm_cfg(make_cfg, "model.pretrained=true", f"model.weights={wider}")
    with pytest.raises(ConfigError, match=r"cannot be loaded into test_resnet: .*size mismatch"):
        build(cfg)


def test_input_size_and_channels_come_from_the_data_config(make_cfg):
    vit = build(make_cfg("model=timm", "model.name=test_vit"), image_size=48)
    assert tuple(vit.patch_embed.img_size) == (48, 48)  # fixed-size models are built for it
    assert vit(torch.randn(1, 3, 48, 48)).shape == (1, 5)
    gray = build(timm_cfg(make_cfg), num_classes=7, in_channels=1)
    assert gray(torch.randn(2, 1, 32, 32)).shape == (2, 7)


# --- freezing -------------------------------------------------------------------------------------


def trainable_groups(model: torch.nn.Module) -> list[bool]:
    params = dict(model.named_parameters())
    return [all(params[n].requires_grad for n in g) for g in layer_groups(model)]


@pytest.mark.parametrize(
    ("freeze", "expected"),
    [
        ("none", [True] * 6),
        ("all_but_head", [False] * 5 + [True]),
        ("all_but_last_stage", [False] * 4 + [True] * 2),
        ("2", [False, False] + [True] * 4),
        ("-3", [False] * 3 + [True] * 3),
    ],
)
def test_freeze_modes_use_timms_stages(make_cfg, freeze, expected):
    cfg = timm_cfg(make_cfg, f"model.freeze={freeze}")
    model = build(cfg)
    freezer_from(cfg, model).apply(0)
    assert trainable_groups(model) == expected
    assert layer_groups(model)[4][0].startswith("layer4.") and layer_groups(model)[5] == [
        "fc.weight",
        "fc.bias",
    ]


@pytest.mark.parametrize(
    "name", ["simple_cnn", "test_resnet", "test_vit", "test_convnext", "test_efficientnet"]
)
def test_the_import_free_grouping_matches_timms(make_cfg, name):
    from timm.models import group_parameters

    from lrlab.models.groups import group_names

    cfg = make_cfg() if name == "simple_cnn" else make_cfg("model=timm", f"model.name={name}")
    model = build(cfg)
    for coarse in (True, False):
        matcher = model.group_matcher(coarse=coarse)
        ref = group_parameters(model, matcher)
        mine = group_names([n for n, _ in model.named_parameters()], matcher)
        assert mine == [ref[k] for k in sorted(ref)]


def test_simple_cnn_blocks_are_its_stages(make_cfg):
    cfg = make_cfg("model.freeze=all_but_last_stage")
    model = build_model(cfg.model, 10, 1, 16)
    freezer_from(cfg, model).apply(0)
    trainable = {
        n.split(".")[0] + "." + n.split(".")[1]
        for n, p in model.named_parameters()
        if p.requires_grad
    }
    assert trainable == {"features.2", "classifier.2", "classifier.5"}


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.freeze=some"], "model.freeze='some'"),
        (["model.freeze=6"], "model.freeze=6"),
        (["model.freeze=true"], "model.freeze=True"),
        (["model.fine_tune=true"], "model.fine_tune=true"),
        (
            ["model.fine_tune=true", "model.freeze=all_but_head", "model.freeze_epochs=3"],
            "model.freeze_epochs=3",
        ),
    ],
)
def test_bad_freeze_settings_are_config_errors(make_cfg, overrides, key):
    cfg = timm_cfg(make_cfg, *overrides)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        freezer_from(cfg, build(cfg), epochs=3)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_steps(cfg, model, freezer: Freezer, steps: int = 2, epoch: int = 0):
    from lrlab.engine.step import TrainStep

    optimizer = build_optimizer_from(cfg, model)
    step = TrainStep(model, optimizer, torch.device("cpu"))
    torch.manual_seed(0)
    freezer.apply(epoch)
    freezer.train_mode()
    for _ in range(steps):
        step([(torch.randn(4, 3, 16, 16), torch.randint(0, 5, (4,)))])
    return optimizer


@pytest.mark.parametrize("frozen_bn_eval", [True, False])
def test_a_training_step_changes_only_unfrozen_parameters(make_cfg, frozen_bn_eval):
    cfg = timm_cfg(
        make_cfg,
        "optimizer=sgd",
        "model.freeze=all_but_last_stage",
        f"model.frozen_bn_eval={str(frozen_bn_eval).lower()}",
    )
    model = build(cfg)
    freezer = freezer_from(cfg, model)
    before = snapshot(model)
    train_steps(cfg, model, freezer)
    after = model.state_dict()
    trainable = ("layer4.", "fc.")
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], after[name])
        assert changed == name.startswith(trainable), name
        assert (p.grad is None) or name.startswith(trainable)
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    for k in stats:
        changed = not torch.equal(before[k], after[k])
        # frozen BN statistics stay (eval mode) unless frozen_bn_eval=false; layer4's update
        assert changed == (k.startswith("layer4.") or not frozen_bn_eval), k


def test_frozen_batchnorm_stays_in_eval_mode_across_train_calls(make_cfg):
    cfg = timm_cfg(make_cfg, "model.freeze=all_but_head")
    model = build(cfg)
    freezer = freezer_from(cfg, model)
    freezer.apply(0)
    freezer.train_mode()
    bns = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert bns and not any(m.training for m in bns.values())
    assert model.training and model.fc.training


# --- fine_tune ------------------------------------------------------------------------------------


SMALL_CNN = ["model.channels=[4,8,8]", "model.hidden=8"]


def run_schedule(cfg, model, freezer: Freezer | None, spe: int, epochs: int):
    """A minimal loop over random 16x16 gray images: per step, the lrs and whether the optimizer
    updated the stem (the first conv; Adam counts each parameter's own steps)."""
    from lrlab.engine.step import TrainStep

    optimizer = build_optimizer_from(cfg, model)
    step = TrainStep(model, optimizer, torch.device("cpu"))
    sched = build_scheduler(cfg.scheduler, optimizer, spe, epochs)
    gen = torch.Generator().manual_seed(0)
    stem_weight = model.features[0][0].weight
    lrs, stem_moved = [], []
    for epoch in range(epochs):
        if freezer is not None:
            freezer.apply(epoch)
            freezer.train_mode()
        else:
            model.train()
        for _ in range(spe):
            stem = int(optimizer.state.get(stem_weight, {}).get("step", 0))
            lrs.append([g["lr"] for g in optimizer.param_groups])
            x = torch.randn(4, 1, 16, 16, generator=gen)
            step([(x, torch.randint(0, 5, (4,), generator=gen))])
            sched.step()
            stem_moved.append(int(optimizer.state.get(stem_weight, {}).get("step", 0)) > stem)
    return optimizer, lrs, stem_moved


@pytest.mark.parametrize("scheduler", ["onecycle", "sgdr", "clr"])
def test_fine_tune_unfreezes_at_the_right_step_and_the_schedule_continues(make_cfg, scheduler):
    common = [*SMALL_CNN, "optimizer=adam", f"scheduler={scheduler}", "model.lr_mult=10"]
    cfg = make_cfg(
        *common, "model.freeze=all_but_head", "model.fine_tune=true", "model.freeze_epochs=1"
    )
    spe, epochs = 2, 3
    model = build_model(cfg.model, 5, 1, 16)
    freezer = freezer_from(cfg, model, epochs=epochs)
    optimizer, lrs, stem_moved = run_schedule(cfg, model, freezer, spe, epochs)
    assert stem_moved == [False] * 2 + [True] * 4  # unfrozen exactly from step 2 on
    # The lrs are those of the same schedule without any freezing: one continuous schedule.
    ref_cfg = make_cfg(*common)
    _, ref_lrs, ref_moved = run_schedule(
        ref_cfg, build_model(ref_cfg.model, 5, 1, 16), None, spe, epochs
    )
    assert lrs == ref_lrs and all(ref_moved)
    assert len({round(lr[0], 12) for lr in lrs}) >= 4  # and the schedule does move
    # The head's optimizer state survived the unfreeze; the stem's started there.
    state = optimizer.state
    assert int(state[model.classifier[-1].weight]["step"]) == 6
    assert int(state[model.features[0][0].weight]["step"]) == 4


def test_freezer_state_depends_on_the_epoch_only(make_cfg):
    cfg = timm_cfg(make_cfg, "model.freeze=all_but_head", "model.fine_tune=true")
    model = build(cfg)
    resumed = freezer_from(cfg, model, epochs=4)
    assert resumed.apply(2) is False  # a run resumed after the unfreeze starts unfrozen
    assert all(p.requires_grad for p in model.parameters())
    fresh = freezer_from(cfg, build(cfg), epochs=4)
    assert [fresh.apply(e) for e in range(4)] == [False, True, False, False]


def test_parameters_the_model_keeps_fixed_stay_fixed_after_the_unfreeze(make_cfg):
    cfg = timm_cfg(make_cfg, "model.freeze=all_but_head", "model.fine_tune=true")
    model = build(cfg)
    model.conv1[0].weight.requires_grad_(False)
    freezer = freezer_from(cfg, model, epochs=2)
    freezer.apply(0)
    freezer.apply(1)
    assert not model.conv1[0].weight.requires_grad and model.layer1[0].conv1.weight.requires_grad


# --- in the training loop -------------------------------------------------------------------------


def train_and_keep_model(cfg, monkeypatch) -> tuple[dict, dict, torch.nn.Module, list[dict]]:
    """train(cfg), keeping the model it built and its initial state."""
    from lrlab.tasks import build as training
    from lrlab.tracking import read_jsonl

    built: dict[str, torch.nn.Module] = {}

    def spy(*args, **kwargs):
        built["model"] = model = build_model(*args, **kwargs)
        built["init"] = snapshot(model)
        return model

    monkeypatch.setattr(training, "build_model", spy)
    summary = train(cfg)
    rows = read_jsonl(Path(cfg.paths.output_dir) / "metrics.jsonl")
    return summary, built["init"], built["model"], [r for r in rows if r["type"] == "step"]


# --- end to end -----------------------------------------------------------------------------------
