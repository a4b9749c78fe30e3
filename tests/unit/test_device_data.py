"""The device-resident data path (`data.on_device`): what goes on the device, the batched
augmentation's geometry, determinism and replay, and the fallbacks to the per-sample path."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from torchvision.transforms import v2

from lrlab.data.batched import BatchAugment, NotBatchable, batched_ops
from lrlab.data.device import DeviceLoader, device_loaders
from lrlab.data.transforms import image_transforms
from lrlab.errors import ConfigError
from tests.helpers import CONF, build_data_from


def epoch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


def test_digits_on_the_device_equal_the_per_sample_loaders_bit_for_bit(make_cfg):
    device = build_data_from(make_cfg("data.on_device=auto"))
    loader = build_data_from(make_cfg("data.on_device=false"))
    assert isinstance(device.train_loader, DeviceLoader)
    assert not isinstance(loader.train_loader, DeviceLoader)
    assert len(device.train_loader) == len(loader.train_loader)
    for _ in range(3):  # the order of every epoch, not just the first
        x, y = epoch(device.train_loader)
        px, py = epoch(loader.train_loader)
        assert torch.equal(y, py) and torch.equal(x, px)
    assert all(map(torch.equal, epoch(device.val_loader), epoch(loader.val_loader)))


def test_image_folder_validation_equals_the_per_sample_path(make_cfg, image_folder):
    data = ("data=imagefolder", f"data.root={image_folder}", "data.image_size=16")
    device = build_data_from(make_cfg(*data))
    loader = build_data_from(make_cfg(*data, "data.on_device=false", out="plain"))
    assert isinstance(device.val_loader, DeviceLoader)
    x, y = epoch(device.val_loader)
    px, py = epoch(loader.val_loader)
    assert torch.equal(y, py) and torch.equal(x, px)  # same resize, crop and normalisation
    tx, _ = epoch(device.train_loader)
    assert tx.shape[1:] == (3, 16, 16) and tx.dtype == torch.float32


def test_the_default_train_transforms_map_onto_batched_ops():
    crop_flip = OmegaConf.merge(  # augment=crop_flip at 64 px, as training composes it
        {"data": {"image_size": 64}},
        {"augment": OmegaConf.load(CONF / "augment" / "crop_flip.yaml")},
    )
    augment = OmegaConf.to_container(crop_flip, resolve=True)["augment"]
    train, val = image_transforms(64, [0.5, 0.4, 0.3], [0.2, 0.2, 0.2], augment=augment)
    p = batched_ops(train)
    assert p.augment.flip and p.augment.crop_scale == (0.7, 1.0) and p.size == 64
    assert p.mean == (0.5, 0.4, 0.3) and p.scales
    v = batched_ops(val)
    assert not v.augment.active and len(v.geometry) == 2  # resize + centre crop, stored once
    pad = batched_ops(v2.Compose([v2.RandomCrop(32, padding=4), v2.ToImage()]))
    assert pad.augment.pad == 4 and pad.size == 32


@pytest.mark.parametrize(
    ("transform", "why"),
    [
        (v2.ColorJitter(0.4), "ColorJitter has no batched equivalent"),
        (v2.RandomHorizontalFlip(p=0.2), "RandomHorizontalFlip"),
        (v2.RandomCrop(32, padding=4, padding_mode="reflect"), "RandomCrop"),
    ],
)
def test_transforms_without_a_batched_equivalent_are_named(transform, why):
    with pytest.raises(NotBatchable, match=why):
        batched_ops(v2.Compose([transform]))


def test_unbatchable_data_stays_per_sample_with_auto_and_is_refused_with_true(make_cfg):
    from torch.utils.data import TensorDataset

    class Decoding(torch.utils.data.Dataset):  # e.g. an uncached image folder
        def __len__(self):
            return 4

    sets = (Decoding(), TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)))
    gen = torch.Generator().manual_seed(0)
    assert device_loaders(*sets, 2, gen, None, "auto") is None
    with pytest.raises(ConfigError, match=r"^data.on_device=true: the data cannot go on the "):
        device_loaders(*sets, 2, gen, None, "true")
    with pytest.raises(ConfigError, match="data parallel"):
        device_loaders(sets[1], sets[1], 2, gen, None, "true", distributed=True)
    assert device_loaders(sets[1], sets[1], 2, gen, None, "auto", distributed=True) is None


def test_an_uncached_image_folder_uses_the_per_sample_path(make_cfg, image_folder):
    cfg = make_cfg("data=imagefolder", f"data.root={image_folder}", "data.cache_images=false")
    assert not isinstance(build_data_from(cfg).train_loader, DeviceLoader)
    with pytest.raises(ConfigError, match="data.on_device=true"):
        build_data_from(make_cfg(*cfg_overrides(image_folder), "data.on_device=true", out="t"))


def cfg_overrides(root) -> tuple[str, ...]:
    return ("data=imagefolder", f"data.root={root}", "data.cache_images=false")


def test_a_bad_on_device_value_is_one_line(make_cfg):
    from lrlab.tasks.config import check_config

    cfg = make_cfg("data.on_device=maybe")
    with pytest.raises(ConfigError, match=r"data.on_device='maybe' is not one of auto, true"):
        check_config(cfg)


def ramp(b: int, size: int) -> torch.Tensor:
    """Images whose channel 0 is the column index and channel 1 the row index: bilinear
    sampling of them returns the sampled coordinates exactly."""
    cols = torch.arange(size, dtype=torch.float32).expand(size, size)
    return torch.stack([cols, cols.T]).expand(b, 2, size, size).contiguous()


def test_random_resized_crops_stay_inside_with_the_configured_area_and_ratio():
    aug = BatchAugment(flip=True, crop_scale=(0.3, 1.0), crop_ratio=(3 / 4, 4 / 3))
    size, b = 32, 256
    u = aug.draw(b, torch.Generator().manual_seed(0))
    out = aug(ramp(b, size), u)
    x, y = out[:, 0], out[:, 1]
    # sampled width/height in pixels, from the coordinates at the outer pixel centres
    width = (x[:, 0, -1] - x[:, 0, 0]).abs() * size / (size - 1)
    height = (y[:, -1, 0] - y[:, 0, 0]) * size / (size - 1)
    area, ratio = width * height / size**2, width / height
    assert (area > 0.3 - 1e-4).all() and (area < 1 + 1e-4).all()
    clamped = (width > size - 1e-3) | (height > size - 1e-3)  # kept inside: narrower ratio
    assert ((ratio[~clamped] > 3 / 4 - 1e-4) & (ratio[~clamped] < 4 / 3 + 1e-4)).all()
    left = torch.minimum(x[:, 0, 0], x[:, 0, -1]) - (width / size) / 2
    assert (left > -0.5 - 1e-3).all()  # no sample reaches past the image (no zero padding)
    assert (torch.maximum(x[:, 0, 0], x[:, 0, -1]) < size - 0.5 + 1e-3).all()
    flipped = x[:, 0, -1] < x[:, 0, 0]
    assert torch.equal(flipped, u[:, 0] < 0.5)
    assert 0.35 < flipped.float().mean() < 0.65
    assert width.std() > 1  # per-sample parameters, not one per batch


def test_pad_crop_shifts_whole_pixels_with_zero_fill_like_random_crop():
    aug = BatchAugment(pad=2)
    size, b = 8, 64
    x = torch.rand(b, 3, size, size) + 1  # no zeros inside the image
    u = aug.draw(b, torch.Generator().manual_seed(1))
    out = aug(x, u)
    dx = torch.floor(u[:, 3] * 5).long() - 2
    dy = torch.floor(u[:, 4] * 5).long() - 2
    for i in range(b):  # RandomCrop(size, padding=2): out[r, c] = padded[r + 2 + dy, c + 2 + dx]
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        r, c = 2 + int(dy[i]), 2 + int(dx[i])
        assert torch.allclose(out[i], padded[:, r : r + size, c : c + size], atol=1e-5)
    assert len(set(zip(dx.tolist(), dy.tolist(), strict=True))) > 10


def test_flip_only_flips_exactly_the_drawn_samples():
    aug = BatchAugment(flip=True)
    x = torch.rand(32, 3, 5, 5)
    u = aug.draw(32, torch.Generator().manual_seed(2))
    out = aug(x, u)
    flip = u[:, 0] < 0.5
    assert torch.equal(out[flip], x[flip].flip(3)) and torch.equal(out[~flip], x[~flip])


def augmented_loader(seed: int, n: int = 40) -> DeviceLoader:
    from lrlab.data.batched import Pipeline
    from lrlab.data.device import DeviceImages

    images = torch.randint(0, 256, (n, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator())
    pipeline = Pipeline(size=12, mean=(0.5,) * 3, std=(0.25,) * 3, scales=True)
    pipeline.augment = BatchAugment(flip=True, crop_scale=(0.5, 1.0))
    data = DeviceImages(images, torch.arange(n), pipeline)
    return DeviceLoader(data, 8, True, torch.Generator().manual_seed(seed))


def test_augmentation_is_seeded_and_an_epoch_replays_from_its_start_state():
    a, b, other = augmented_loader(3), augmented_loader(3), augmented_loader(4)
    first = epoch(a)
    assert all(map(torch.equal, first, epoch(b)))
    assert not torch.equal(first[0], epoch(other)[0])
    start = a.generator.get_state()  # what a checkpoint keeps for a mid-epoch resume
    second = epoch(a)
    assert not torch.equal(second[0], first[0])  # each epoch draws anew
    b.generator.set_state(start)
    assert all(map(torch.equal, second, epoch(b)))
    x, _ = second  # normalised: about (u8/255 - 0.5) / 0.25
    assert -2.1 < x.min() < -1.5 and 1.5 < x.max() < 2.1


def test_the_batch_size_can_change_between_epochs():
    loader = augmented_loader(0)
    loader.batch_sampler.batch_size = 16  # what a resizing plan's stages do
    assert len(loader) == 3 and [len(y) for _, y in loader] == [16, 16, 8]


def test_normalisation_matches_to_dtype_and_normalize():
    from lrlab.data.batched import Pipeline
    from lrlab.data.device import DeviceImages

    u8 = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8)
    p = Pipeline(mean=(0.1, 0.2, 0.3), std=(0.3, 0.2, 0.1), scales=True)
    ours = DeviceImages(u8, torch.zeros(4), p).normalise(u8.float())
    theirs = v2.Normalize(p.mean, p.std)(v2.ToDtype(torch.float32, scale=True)(u8))
    assert torch.equal(ours, theirs)
    assert math.isclose(
        float(ours[0, 0, 0, 0]), (int(u8[0, 0, 0, 0]) / 255 - 0.1) / 0.3, rel_tol=1e-5
    )


def test_a_cpu_batch_is_built_on_one_thread_and_training_keeps_every_thread(monkeypatch):
    seen = []
    loader = augmented_loader(0)
    real = loader.data.normalise

    def spy(x):
        seen.append(torch.get_num_threads())
        return real(x)

    monkeypatch.setattr(loader.data, "normalise", spy)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in loader:
            assert torch.get_num_threads() == 2  # what the model's step gets
    finally:
        torch.set_num_threads(threads)
    assert seen == [1] * len(loader)
