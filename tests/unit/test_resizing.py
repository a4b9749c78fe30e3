"""`resizing:` pieces: the size plan, the loader whose batch size changes per epoch, the resized
batches, the epoch clock of the schedules, and the one-line errors."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from lrlab.data.resizing import (
    FixedSize,
    ResizedBatches,
    ResizingConfig,
    SizePlan,
    SizeStage,
    check_stages_fit,
    refuse_fixed_input_size,
    resize,
    staged_loader,
)
from lrlab.errors import ConfigError
from lrlab.optim import build_scheduler
from lrlab.optim.scheduler import epoch_clock
from lrlab.optim.schedules import anneal_cos
from tests.helpers import CONF, scheduler_cfg
from tests.unit.test_schedules import make_opt, trace

OFF = yaml.safe_load((CONF / "resizing" / "none.yaml").read_text())  # resizing=none's values


def resizing_config(**kwargs) -> ResizingConfig:
    """`resizing=none` with `kwargs` set (the values live in conf/resizing/none.yaml)."""
    return ResizingConfig(**{**OFF, **kwargs})


STAGES = [
    SizeStage(size=16, epochs=2, batch_size=8),
    SizeStage(size=24, epochs=1),
    SizeStage(size=32),
]


def plan(**kwargs) -> SizePlan:
    return SizePlan(resizing_config(**kwargs), seed=3, native_size=32, batch_size=4)


def test_stages_give_each_epoch_its_size_and_batch_size():
    p = plan(stages=STAGES)
    assert [p.train_size(e, 0) for e in range(6)] == [16, 16, 24, 32, 32, 32]
    assert [p.batch_size(e) for e in range(6)] == [8, 8, 4, 4, 4, 4]
    assert p.val_size == 32 and p.changes_batch_size
    assert plan(stages=STAGES, val_size=24).val_size == 24
    assert not plan(stages=[SizeStage(size=16, epochs=1), SizeStage(size=32)]).changes_batch_size


def test_multiscale_sizes_are_seeded_per_epoch_and_independent_of_the_order_asked():
    p, q = plan(sizes=[16, 24, 32]), plan(sizes=[16, 24, 32])
    first = [p.train_size(0, i) for i in range(50)]
    assert set(first) == {16, 24, 32} and p.val_size == 32  # validation at the data's size
    later = [q.train_size(1, i) for i in range(5)]  # another epoch first, then epoch 0 backwards
    assert [q.train_size(0, i) for i in reversed(range(50))] == first[::-1]
    assert [p.train_size(1, i) for i in range(5)] == later
    other_seed = SizePlan(resizing_config(sizes=[16, 24, 32]), seed=4, native_size=32, batch_size=4)
    assert [other_seed.train_size(0, i) for i in range(50)] != first
    state = torch.random.get_rng_state()
    p.train_size(7, 30)
    assert torch.equal(torch.random.get_rng_state(), state)  # torch's RNG untouched


def test_resize_is_antialiased_interpolation_and_a_no_op_at_the_same_size():
    x = torch.rand(2, 3, 32, 32)
    assert resize(x, 32) is x
    expected = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", antialias=True)
    assert torch.equal(resize(x, 16), expected)
    assert resize(x, 8, "nearest").shape == (2, 3, 8, 8)


def test_resized_batches_follow_the_epoch_and_fixed_size_validation():
    batches = [(torch.rand(4, 3, 32, 32), torch.zeros(4)) for _ in range(3)]
    resized = ResizedBatches(batches, plan(stages=STAGES))
    assert [x.shape[-1] for x, _ in resized] == [16] * 3 and len(resized) == 3
    resized.epoch = 2
    assert [x.shape[-1] for x, _ in resized] == [24] * 3 and resized.last_size == 24
    assert [x.shape[-1] for x, _ in FixedSize(batches, 20, "bilinear")] == [20] * 3


def loader(batch_size: int = 4) -> DataLoader:
    ds = TensorDataset(torch.arange(30).float(), torch.arange(30))
    return DataLoader(
        ds, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(5)
    )


def test_staged_loader_yields_the_same_batches_at_the_same_batch_size():
    plain, staged = loader(), staged_loader(loader(), 4)
    for _ in range(2):  # two epochs: the generators advance alike
        assert [y.tolist() for _, y in plain] == [y.tolist() for _, y in staged]
    assert len(staged) == len(plain) == 8


def test_staged_loader_changes_its_batch_size_keeping_the_data_order():
    plain, staged = loader(), staged_loader(loader(), 4)
    staged.batch_sampler.batch_size = 7
    order = [i for _, y in plain for i in y.tolist()]
    batches = [y.tolist() for _, y in staged]
    assert len(staged) == 5 and [len(b) for b in batches] == [7, 7, 7, 7, 2]
    assert [i for b in batches for i in b] == order  # the same permutation of the epoch


def test_epoch_clock_maps_steps_to_fractional_epochs():
    clock = epoch_clock([2, 4, 4], spe=4)  # epoch 0 has 2 steps (a larger batch), then 4
    assert [clock(t) for t in range(12)] == [0, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert epoch_clock([4, 4], spe=4) is None and epoch_clock(None, 4) is None


def test_a_schedule_follows_the_epochs_when_their_step_counts_differ():
    """cosine over 3 epochs of 2, 4 and 4 steps: each step takes the value of the fractional
    epoch where it starts, so the curve over epochs is the uniform run's."""
    opt = make_opt()
    got = [
        r[0] for r in trace(opt, build_scheduler(scheduler_cfg("cosine"), opt, 4, 3, [2, 4, 4]), 10)
    ]
    epochs = [0, 0.5, 1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 2.75]
    assert got == pytest.approx([anneal_cos(0.1, 0.0, x / 3) for x in epochs], rel=1e-12)


def test_stages_must_start_within_the_run():
    check_stages_fit(resizing_config(stages=STAGES), 4)
    with pytest.raises(
        ConfigError, match=re.escape("resizing.stages[2] (size 32) would start after epoch 3")
    ):
        check_stages_fit(resizing_config(stages=STAGES), 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stages": [SizeStage(size=16)], "sizes": [16]}, "resizing.stages and resizing.sizes: choose one"),
        ({"stages": [SizeStage(size=0)]}, "resizing.stages[0].size=0: must be an integer >= 1"),
        ({"stages": [SizeStage(size=16, epochs=0), SizeStage(size=32)]}, "resizing.stages[0].epochs=0"),
        ({"stages": [SizeStage(size=16), SizeStage(size=32)]}, "resizing.stages[0].epochs=None"),
        ({"stages": [SizeStage(size=16, epochs=2)]}, "resizing.stages[0].epochs=2: the last stage runs to the end"),
        ({"stages": [SizeStage(size=16, batch_size=-1)]}, "resizing.stages[0].batch_size=-1"),
        ({"sizes": [16, -8]}, "resizing.sizes[1]=-8: must be an integer >= 1"),
        ({"val_size": 0}, "resizing.val_size=0"),
        ({"mode": "lanczos"}, "resizing.mode='lanczos': must be bilinear | bicubic | area | nearest"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        resizing_config(**kwargs)
    assert "\n" not in str(err.value)


def test_models_with_a_fixed_input_size_are_refused():
    timm = pytest.importorskip("timm")
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, num_classes=2)
    with pytest.raises(ConfigError, match=r"vit_tiny_patch16_224 takes a fixed input size"):
        refuse_fixed_input_size(vit)
    refuse_fixed_input_size(timm.create_model("resnet18", num_classes=2))  # any size: accepted
