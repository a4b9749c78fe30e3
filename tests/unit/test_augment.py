"""The augment= group: composable transforms.v2 pieces, per-data-set defaults, random erasing,
mixup/cutmix with soft labels in the train step, the summary record and the batch grid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.transforms import v2

import tests.helpers
from lrlab.data.augment import batch_transform, effective_augment
from lrlab.data.transforms import image_transforms
from lrlab.engine.step import TrainStep
from lrlab.errors import ConfigError
from lrlab.tasks.build import trained_augment
from lrlab.tasks.config import check_config
from tests.helpers import FLOWERS, build_data_from, requires_flowers

AUGMENTS = ["none", "crop_flip", "pad_crop", "trivialaugment", "randaugment"]


def folder_cfg(make_cfg, root: Path, *overrides: str):
    return make_cfg(
        "data=imagefolder", f"data.root={root}", "data.image_size=16", "data.batch_size=8",
        *overrides,
    )  # fmt: skip


def train_ops(cfg) -> list[type]:
    augment = effective_augment(trained_augment(cfg))
    train, _ = image_transforms(16, [0.5] * 3, [0.2] * 3, augment)
    return [type(t) for t in train.transforms]


@pytest.mark.parametrize(
    ("augment", "expected"),
    [
        ("none", [v2.Resize, v2.CenterCrop]),
        ("crop_flip", [v2.RandomResizedCrop, v2.RandomHorizontalFlip]),
        ("pad_crop", [v2.RandomCrop, v2.RandomHorizontalFlip]),
        ("trivialaugment", [v2.RandomResizedCrop, v2.RandomHorizontalFlip, v2.TrivialAugmentWide]),
        ("randaugment", [v2.RandomResizedCrop, v2.RandomHorizontalFlip, v2.RandAugment]),
    ],
)
def test_each_augment_option_is_its_transforms_v2_pieces(make_cfg, image_folder, augment, expected):
    cfg = folder_cfg(make_cfg, image_folder, f"augment={augment}")
    check_config(cfg)
    assert train_ops(cfg) == [*expected, v2.ToImage, v2.ToDtype, v2.Normalize]


def test_pad_crop_pads_4_and_crops_to_the_image_size(make_cfg, image_folder):
    cfg = folder_cfg(make_cfg, image_folder, "augment=pad_crop")
    crop = effective_augment(trained_augment(cfg))["ops"]["crop"]
    assert (crop["padding"], crop["size"], crop["padding_mode"]) == (4, 16, "reflect")


def test_random_erasing_runs_last_on_the_normalised_tensor(make_cfg, image_folder):
    cfg = folder_cfg(make_cfg, image_folder, "augment=pad_crop", "augment.random_erasing=0.5")
    assert train_ops(cfg)[-2:] == [v2.Normalize, v2.RandomErasing]


def test_an_op_can_be_dropped_or_added_by_name(make_cfg, image_folder):
    cfg = folder_cfg(
        make_cfg, image_folder, "augment=crop_flip", "augment.ops.flip=null",
        "+augment.ops.jitter={_target_: torchvision.transforms.v2.ColorJitter, brightness: 0.2}",
    )  # fmt: skip
    check_config(cfg)
    assert train_ops(cfg)[:2] == [v2.RandomResizedCrop, v2.ColorJitter]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("augment.random_erasing=1.5", "augment.random_erasing must be in"),
        ("+augment.ops.bad={p: 0.5}", "augment.ops.bad needs a _target_"),
        ("+augment.ops.crop.scal=[0.5,1]", "augment.ops.crop.scal is not a key.*did you mean"),
    ],
)
def test_bad_augment_values_are_one_line_errors(make_cfg, image_folder, override, message):
    cfg = folder_cfg(make_cfg, image_folder, "augment=crop_flip", override)
    with pytest.raises(ConfigError, match=message) as e:
        check_config(cfg)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("data", "default"),
    [("digits", "none"), ("flowers", "crop_flip"), ("imagefolder", "crop_flip"),
     ("cifar10", "pad_crop"), ("cifar100", "pad_crop"), ("mnist", "none"),
     ("fashion_mnist", "pad_crop")],
)  # fmt: skip
def test_each_data_set_picks_its_default_augmentation(make_cfg, data, default):
    assert make_cfg(f"data={data}").augment.name == default
    assert make_cfg(f"data={data}", "augment=randaugment").augment.name == "randaugment"


def test_data_augment_false_trains_without_the_group(make_cfg, image_folder):
    cfg = folder_cfg(make_cfg, image_folder, "augment=trivialaugment", "data.augment=false")
    assert trained_augment(cfg)["name"] == "none"
    data = build_data_from(cfg)
    x1, _ = data.train_loader.dataset[0]
    x2, _ = data.train_loader.dataset[0]
    assert torch.equal(x1, x2)  # nothing random left


def test_digits_refuses_per_sample_augmentation(make_cfg):
    with pytest.raises(ConfigError, match="data=digits takes no per-sample augmentation"):
        build_data_from(make_cfg("augment=pad_crop"))


class Scale(nn.Module):
    """logits = w * x with w = 1: the logits are the (mixed) inputs themselves."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x


def test_mixup_loss_and_accuracy_take_soft_labels():
    """The step's loss is the cross-entropy against the mixed labels, its accuracy counts the
    dominant label; checked against a hand-made mix with a fixed lambda."""
    lam = 0.7

    def mix(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        one_hot = nn.functional.one_hot(y, 3).float()
        return lam * x + (1 - lam) * x.roll(1, 0), lam * one_hot + (1 - lam) * one_hot.roll(1, 0)

    x = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])
    y = torch.tensor([0, 1, 2, 1])
    model = Scale()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    step = TrainStep(model, opt, torch.device("cpu"), batch_transform=mix)
    loss_sum, correct, n = step([(x, y)])
    mixed_x, soft = mix(x, y)
    expected = -(soft * mixed_x.log_softmax(1)).sum(1).mean()
    assert loss_sum.item() / n == pytest.approx(expected.item(), rel=1e-6)
    assert correct.item() == (mixed_x.argmax(1) == soft.argmax(1)).sum().item() == 3


@pytest.mark.parametrize("name", ["mixup", "cutmix", "mixup_cutmix"])
def test_batch_transforms_return_soft_labels_of_the_data_set_classes(make_cfg, name):
    cfg = make_cfg(f"augment/batch={name}")
    check_config(cfg)
    mix = batch_transform(trained_augment(cfg), num_classes=10)
    x, y = mix(torch.rand(8, 1, 16, 16), torch.arange(8))
    assert x.shape == (8, 1, 16, 16) and y.shape == (8, 10)
    assert torch.allclose(y.sum(1), torch.ones(8))


def test_a_mixup_run_trains_and_records_its_augmentation(make_cfg):
    from lrlab.tasks.train import train

    cfg = make_cfg(
        "augment/batch=cutmix", "trainer.epochs=1", "trainer.limit_train_batches=3",
        "trainer.checkpoint=false", "tags=[mixed]",
    )  # fmt: skip
    summary = train(cfg)
    assert summary["status"] == "completed"
    recorded = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert recorded["augment"]["batch"]["_target_"] == "torchvision.transforms.v2.CutMix"
    assert recorded["tags"] == ["mixed"]


@pytest.mark.parametrize("augment", AUGMENTS)
def test_every_augmentation_trains_end_to_end_on_an_image_folder(make_cfg, image_folder, augment):
    from lrlab.tasks.train import train

    cfg = folder_cfg(
        make_cfg, image_folder, f"augment={augment}", "augment.random_erasing=0.25",
        "augment/batch=mixup_cutmix", "trainer.epochs=1", "trainer.checkpoint=false",
    )  # fmt: skip
    assert train(cfg)["status"] == "completed"


def test_show_batch_writes_the_augmented_grid(image_folder, tmp_path, monkeypatch, capsys):
    from lrlab.cli import show_batch

    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    out = tmp_path / "grid.png"
    code = show_batch.main(
        ["data=imagefolder", f"data.root={image_folder}", "augment=trivialaugment",
         "augment/batch=mixup", "--out", str(out), "--n", "6"]
    )  # fmt: skip
    assert code == 0 and out.stat().st_size > 1000
    assert capsys.readouterr().out.strip() == str(out)


def test_show_batch_labels_soft_labels_by_their_two_largest_shares():
    from lrlab.cli.show_batch import label_text

    assert label_text(torch.tensor(2), ["a", "b", "c"]) == "c"
    assert label_text(torch.tensor([0.0, 0.3, 0.7]), ["a", "b", "c"]) == "c 0.70 / b 0.30"


def test_show_batch_bad_override_is_one_line(capsys):
    from lrlab.cli import show_batch

    assert show_batch.main(["augment=nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


@requires_flowers()
@pytest.mark.slow
@pytest.mark.parametrize("augment", AUGMENTS)
def test_every_augmentation_trains_on_the_flowers_and_shows_in_the_grid(
    make_cfg, tmp_path, monkeypatch, augment
):
    from lrlab.cli import show_batch
    from lrlab.tasks.train import train

    common = [
        "data=flowers", f"data.root={FLOWERS}", "data.image_size=32", "data.cache_images=false",
        f"augment={augment}", "augment/batch=mixup_cutmix", "augment.random_erasing=0.25",
        f"data.stats_dir={tests.helpers.shared_flowers_cache}",  # the session's: no pass each
    ]  # fmt: skip
    cfg = make_cfg(
        *common, "trainer.epochs=1", "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=2", "trainer.checkpoint=false",
    )  # fmt: skip
    assert train(cfg)["status"] == "completed"
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert show_batch.main([*common, "--out", str(tmp_path / "grid.png"), "--n", "4"]) == 0


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_a_mixup_run_resumed_mid_epoch_stays_exact(make_cfg, monkeypatch, precision):
    """MixUp draws from the RNG the checkpoint holds: the resumed records equal the
    uninterrupted run's (in mixed precision too)."""
    import signal

    from lrlab.tasks.train import train
    from tests.helpers.interrupts import SignalAt, add_callback
    from tests.integration.test_resume import COMMON, auto, records, uninterrupted

    extra = ["augment/batch=mixup_cutmix", f"trainer.precision={precision}"]
    _, full_rows = uninterrupted(make_cfg, *extra)
    cfg = make_cfg(*COMMON, *extra, out="cut")
    with monkeypatch.context() as m:
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_step_start", step=8))
        train(cfg)
    train(auto(cfg))
    assert records(cfg)[1] == full_rows
