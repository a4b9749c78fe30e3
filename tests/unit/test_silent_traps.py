"""Things that used to pass without a word: a single-class image folder (refused), files the
image loader skips (counted in a warning), mixed precision on the CPU (a warning, once)."""

from __future__ import annotations

import logging

import pytest

from lrlab.errors import ConfigError
from tests.helpers import build_data_from, make_image_folder


def folder_cfg(make_cfg, root, *extra: str):
    return make_cfg("data=imagefolder", f"data.root={root}", "data.image_size=16", *extra)


def test_a_single_class_image_folder_is_refused(make_cfg, tmp_path):
    root = make_image_folder(tmp_path / "one", {"cat": 8})
    with pytest.raises(ConfigError) as err:
        build_data_from(folder_cfg(make_cfg, root))
    assert str(err.value) == (
        f"{root} has a single class folder ('cat'); a classifier needs at least 2"
    )


def test_a_single_class_validation_folder_is_refused(make_cfg, tmp_path):
    root = make_image_folder(tmp_path / "train", {"cat": 4, "dog": 4})
    val = make_image_folder(tmp_path / "val", {"cat": 4})
    with pytest.raises(ConfigError, match=f"{val} has a single class folder"):
        build_data_from(folder_cfg(make_cfg, root, f"data.val_root={val}"))


def test_skipped_files_are_counted_by_extension(make_cfg, tmp_path, caplog):
    root = make_image_folder(tmp_path / "images", {"cat": 4, "dog": 4})
    (root / "cat" / "anim1.gif").write_bytes(b"GIF89a")
    (root / "dog" / "anim2.GIF").write_bytes(b"GIF89a")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".DS_Store").write_bytes(b"")  # hidden files are not the user's data
    with caplog.at_level(logging.WARNING, logger="lrlab.data.folder"):
        data = build_data_from(folder_cfg(make_cfg, root))
    assert len(data.train_loader.dataset) + len(data.val_loader.dataset) == 8
    (record,) = [r for r in caplog.records if "skipped" in r.getMessage()]
    message = record.getMessage()
    assert f"{root}: skipped 3 files the image loader does not read (.gif: 2, .txt: 1)" in message


def test_an_image_folder_without_skipped_files_logs_nothing(make_cfg, tmp_path, caplog):
    root = make_image_folder(tmp_path / "images", {"cat": 4, "dog": 4})
    with caplog.at_level(logging.WARNING, logger="lrlab.data.folder"):
        build_data_from(folder_cfg(make_cfg, root))
    assert not [r for r in caplog.records if "skipped" in r.getMessage()]


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_trains_on_the_cpu_and_warns_once_per_run(make_cfg, caplog, precision):
    import math

    from lrlab.tasks.train import train
    from lrlab.tracking import read_jsonl

    cfg = make_cfg(
        f"trainer.precision={precision}",
        "trainer.device=cpu",
        "trainer.epochs=2",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
    )
    with caplog.at_level(logging.WARNING):
        assert train(cfg)["status"] == "completed"
    epochs = [
        r for r in read_jsonl(cfg.paths.output_dir + "/metrics.jsonl") if r["type"] == "epoch"
    ]
    assert len(epochs) == 2 and all(
        math.isfinite(r["val_loss"]) and r["val_loss"] > 0 for r in epochs
    )
    warnings = [r.getMessage() for r in caplog.records if "mixed precision" in r.getMessage()]
    assert warnings == [
        f"trainer.precision={precision} on the CPU: mixed precision is meant for GPUs and is "
        "several times slower than 32 here (benchmarks/README.md)"
    ]


def test_full_precision_on_the_cpu_does_not_warn(make_cfg, caplog):
    from lrlab.tasks.build import build_components

    with caplog.at_level(logging.WARNING):
        build_components(make_cfg("trainer.device=cpu"))
    assert not [r for r in caplog.records if "mixed precision" in r.getMessage()]
