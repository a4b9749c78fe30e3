"""End to end: timm backbones with offline weights, layer-group freezing and fastai-style fine_tune."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lrlab.models import build_model
from lrlab.tasks.train import train
from tests.helpers import FLOWERS, requires_flowers
from tests.helpers.cli import cli_in_process

TINY = "test_resnet"  # timm's tiny test ResNet: stem, layer1-4, fc (a few hundred k params)

SMALL_CNN = ["model.channels=[4,8,8]", "model.hidden=8"]


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


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


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


def test_the_training_loop_freezes_and_fine_tunes(make_cfg, monkeypatch):
    common = [
        *SMALL_CNN,
        "optimizer=sgd",
        "model.lr_mult=10",
        "model.freeze=all_but_head",
        "trainer.epochs=2",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "trainer.checkpoint=false",
    ]
    frozen = train_and_keep_model(make_cfg(*common, out="frozen"), monkeypatch)
    tuned = train_and_keep_model(
        make_cfg(*common, "model.fine_tune=true", "model.freeze_epochs=1", out="tuned"),
        monkeypatch,
    )
    for summary, init, model, _ in (frozen, tuned):
        assert summary["status"] == "completed"
        assert not torch.equal(
            init["classifier.5.weight"], model.state_dict()["classifier.5.weight"]
        )
    stem = ["features.0.0.weight", "features.0.1.weight", "features.0.1.running_mean"]
    _, init, model, frozen_steps = frozen
    assert all(torch.equal(init[k], model.state_dict()[k]) for k in stem)  # frozen all along
    _, init, model, tuned_steps = tuned
    assert not any(torch.equal(init[k], model.state_dict()[k]) for k in stem)  # unfrozen
    # Same schedule, every group's lr logged, head first at optimizer.lr's scale.
    lrs = [r["lr_groups"] for r in tuned_steps]
    assert lrs == [r["lr_groups"] for r in frozen_steps] and len(lrs) == 6
    assert all(r["lr"] == r["lr_groups"][0] == max(r["lr_groups"]) for r in tuned_steps)
    assert min(lrs[0]) == pytest.approx(lrs[0][0] / 10)


@pytest.mark.slow
@requires_flowers()
def test_flowers_transfer_experiment_runs_with_a_local_weights_file(make_cfg, pretrained):
    state, files = pretrained
    cfg = make_cfg(
        "experiment=flowers_transfer",
        f"data.root={FLOWERS}",
        f"model.name={TINY}",
        f"model.weights={files['safetensors']}",
        "data.image_size=32",
        "trainer.epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=2",
        "trainer.log_every_n_steps=1",
    )
    assert cfg.model.freeze == "all_but_last_stage" and cfg.model.pretrained
    summary = train(cfg)
    assert summary["status"] == "completed"
    ckpt = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)[
        "model"
    ]
    assert torch.equal(ckpt["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])  # frozen
    assert torch.equal(ckpt["layer1.0.bn1.running_mean"], state["layer1.0.bn1.running_mean"])
    assert not torch.equal(ckpt["layer4.0.conv1.weight"], state["layer4.0.conv1.weight"])
    assert ckpt["fc.weight"].shape[0] == 5


@pytest.mark.slow
@requires_flowers()
def test_the_issue_command_trains(tmp_path):
    result = cli_in_process(
        "train.py",
        "model=timm",
        "model.name=resnet18",
        "model.freeze=all_but_last_stage",
        "optimizer=sgd",
        "scheduler=onecycle",
        "data=flowers",
        f"data.root={FLOWERS}",
        "trainer.epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
