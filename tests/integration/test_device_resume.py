"""Exact mid-epoch resume on both data paths with augmentation: the device path
(`data.on_device=true`: its generator draws the order and every sample's parameters) and the
per-sample loaders with persistent workers (each sample seeded from the generator)."""

from __future__ import annotations

import signal

import pytest

from lrlab.tasks.train import train
from tests.helpers.interrupts import SignalAt, add_callback
from tests.integration.test_resume import COMMON, auto, checkpoint_of, records


@pytest.mark.parametrize(
    "path",
    [["data.on_device=true"], ["data.on_device=false", "trainer.num_workers=2"]],
    ids=["device", "persistent-workers"],
)
def test_resume_of_augmented_images_stays_exact_on_both_paths(
    make_cfg, monkeypatch, image_folder, path
):
    data = ["data=imagefolder", f"data.root={image_folder}", "data.image_size=16"]
    data += ["data.batch_size=4", "data.augment=true", *path]
    full = make_cfg(*COMMON, *data, out="full")
    train(full)
    cfg = make_cfg(*COMMON, *data, out="cut")
    with monkeypatch.context() as m:
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_step_start", step=10))
        train(cfg)
    assert checkpoint_of(cfg)["step_in_epoch"] == 4
    train(auto(cfg))
    assert records(cfg)[1] == records(full)[1]


def test_progressive_resizing_with_batch_sizes_on_the_device(make_cfg, image_folder):
    data = ["data=imagefolder", f"data.root={image_folder}", "data.image_size=16"]
    data += ["data.batch_size=4", "data.on_device=true", "trainer.epochs=2"]
    stages = "resizing.stages=[{size:8,epochs:1,batch_size:8},{size:16}]"
    cfg = make_cfg(*data, stages, "trainer.log_every_n_steps=1", "trainer.num_threads=1")
    summary = train(cfg)
    assert summary["status"] == "completed"
    steps = [r for r in records(cfg)[1] if r["type"] == "step"]
    sizes = [(r["epoch"] <= 1, r["image_size"], r["batch_size"]) for r in steps]
    assert sizes == [(True, 8, 8)] * 3 + [(False, 16, 4)] * 6  # 24 train images
