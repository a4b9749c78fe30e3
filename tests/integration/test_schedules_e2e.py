"""issue 12 end to end: scheduled hyper-parameters, progressive resizing and multi-scale, the
optimizer switch and lr scaling in real runs: their records, exact resumes (at an epoch's end
and mid-epoch), and the comparison report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lrlab.callbacks.progress import ProgressBar
from lrlab.errors import ConfigError
from lrlab.optim.schedules import anneal_cos, anneal_linear
from lrlab.tasks.train import train
from lrlab.tracking import read_jsonl

# 30 images of 20 px in 3 classes: 24 to train (6 batches of 4), 6 to validate.
FOLDER = ["data=imagefolder", "data.image_size=16", "data.batch_size=4", "data.cache_images=true"]
FAST = ["trainer.log_every_n_steps=1", "model.channels=[8,16]", "model.hidden=16"]
PLAIN_STEP_KEYS = {"type", "step", "epoch", "train_loss", "lr", "lr_groups", "momentum"}


def run(cfg) -> tuple[dict, list[dict]]:
    summary = train(cfg)
    return summary, read_jsonl(Path(cfg.paths.output_dir) / "metrics.jsonl")


def steps(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["type"] == "step"]


def without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def stop_at(monkeypatch, step: int) -> None:
    """A stop signal (as SIGTERM sets it) during optimizer step `step` (1-based): the step
    completes, a checkpoint is written there (mid-epoch) and the run ends `interrupted`."""

    def on_step_start(self, state):
        if state.step + 1 == step:
            state.stop.signal = ("interrupted", "stopped by the test")

    monkeypatch.setattr(ProgressBar, "on_step_start", on_step_start, raising=False)


def resumed_equals_uninterrupted(
    make_cfg, monkeypatch, overrides: list[str], cut: int
) -> list[dict]:
    """Rows of an uninterrupted run; asserts that a run stopped at step `cut` and resumed from
    its checkpoint ends with the very same rows and summary position."""
    full_summary, full = run(make_cfg(*overrides, out="full"))
    assert full_summary["status"] == "completed"
    stop_at(monkeypatch, cut)
    cut_summary, _ = run(make_cfg(*overrides, out="cut"))
    monkeypatch.undo()
    assert cut_summary["status"] == "interrupted" and cut_summary["steps"] == cut
    ckpt = Path(make_cfg(out="cut").paths.output_dir) / "checkpoints" / "last.ckpt"
    summary, resumed = run(make_cfg(*overrides, f"trainer.resume={ckpt}", out="resumed"))
    assert without_times(resumed) == without_times(full)
    assert (summary["steps"], summary["best_val_acc"]) == (
        full_summary["steps"],
        full_summary["best_val_acc"],
    )
    return full


@pytest.fixture
def folder(image_folder) -> list[str]:
    return [*FOLDER, f"data.root={image_folder}", *FAST]


# --- scheduler.params


def test_scheduled_weight_decay_is_in_every_step_row(make_cfg, folder):
    _, rows = run(
        make_cfg(
            *folder, "optimizer=adamw", "scheduler/params=weight_decay_rise", "trainer.epochs=2"
        )
    )
    got = steps(rows)
    assert len(got) == 12
    for r in got:  # the value step r["step"] trained with (its start: step - 1 of 12)
        assert r["weight_decay"] == pytest.approx(
            0.01 * anneal_linear(0.1, 1.0, (r["step"] - 1) / 12)
        )
        assert set(r) == PLAIN_STEP_KEYS | {"weight_decay"}
    _, plain = run(make_cfg(*folder, "trainer.epochs=1", out="plain"))
    assert {k for r in steps(plain) for k in r} == PLAIN_STEP_KEYS  # no new keys without params


# --- resizing


def test_progressive_resizing_with_a_batch_size_per_stage(make_cfg, folder):
    stages = "resizing.stages=[{epochs:1,size:8,batch_size:8},{epochs:1,size:12},{size:16}]"
    summary, rows = run(make_cfg(*folder, stages, "scheduler=cosine", "trainer.epochs=3"))
    got = steps(rows)
    assert [r["image_size"] for r in got] == [8] * 3 + [12] * 6 + [16] * 6
    assert [r["batch_size"] for r in got] == [8] * 3 + [4] * 12
    assert [r["epoch"] for r in got[:4]] == pytest.approx([1 / 3, 2 / 3, 1.0, 1 + 1 / 6], abs=1e-6)
    assert summary["steps"] == 15 and summary["resizing"]["epoch_steps"] == [3, 6, 6]
    assert summary["resizing"]["val_size"] == 16
    # the cosine follows the epochs: step s starts at epoch x and uses lr(x) of the 3-epoch run
    starts = [0, 1 / 3, 2 / 3] + [1 + j / 6 for j in range(6)] + [2 + j / 6 for j in range(6)]
    assert [r["lr"] for r in got] == pytest.approx([1e-3 * anneal_cos(1, 0, x / 3) for x in starts])


def test_progressive_resizing_resumes_exactly_mid_epoch(make_cfg, folder, monkeypatch):
    stages = "resizing.stages=[{epochs:1,size:8,batch_size:8},{size:12}]"
    resumed_equals_uninterrupted(
        make_cfg, monkeypatch, [*folder, stages, "trainer.epochs=3"], cut=5
    )


def test_multiscale_is_reproducible_and_resumes_exactly(make_cfg, folder, monkeypatch):
    overrides = [*folder, "resizing.sizes=[8,12,16]", "trainer.epochs=2"]
    full = resumed_equals_uninterrupted(make_cfg, monkeypatch, overrides, cut=8)
    sizes = [r["image_size"] for r in steps(full)]
    assert set(sizes) == {8, 12, 16}
    _, other_seed = run(make_cfg(*overrides, "seed=1", out="seed1"))
    assert [r["image_size"] for r in steps(other_seed)] != sizes


def test_a_model_with_a_fixed_input_size_is_refused(make_cfg, image_folder):
    pytest.importorskip("timm")
    cfg = make_cfg(
        *FOLDER,
        f"data.root={image_folder}",
        "model=timm",
        "model.name=vit_tiny_patch16_224",
        "resizing=multiscale",
    )
    with pytest.raises(ConfigError, match="takes a fixed input size"):
        train(cfg)


# --- optimizer switch


SWITCH = ["optimizer_switch=adam_to_sgd", "optimizer_switch.epoch=2", "trainer.epochs=3"]


@pytest.mark.parametrize("cut", [6, 12, 15], ids=["before", "at_the_switch", "after"])
def test_optimizer_switch_resumes_exactly_on_both_sides(make_cfg, folder, monkeypatch, cut):
    full = resumed_equals_uninterrupted(make_cfg, monkeypatch, [*folder, *SWITCH], cut=cut)
    got = steps(full)
    assert got[11]["momentum"] != 0.9 and got[12]["momentum"] == 0.9  # Adam's beta1, then SGD's
    assert got[12]["lr"] == pytest.approx(0.01)  # SGD's cosine starts at its own peak
    assert got[-1]["lr"] == pytest.approx(0.01 * anneal_cos(1, 0, 5 / 6))


def test_optimizer_switch_is_recorded_and_one_recipe_in_a_comparison(make_cfg, folder):
    from lrlab.analysis import compare

    for recipe in ("adam", "adam_then_sgd"):
        for seed in (0, 1):
            overrides = [f"+recipe={recipe}", f"seed={seed}"]
            switch = ["optimizer_switch.epoch=1"] if recipe == "adam_then_sgd" else []
            out = f"sweep/{recipe}{seed}"
            cfg = make_cfg(*folder, *overrides, *switch, "trainer.epochs=3", out=out)
            summary = train(cfg, overrides=overrides)
    assert summary["optimizer_switch"] == {
        "epoch": 1,
        "optimizer": "SGD",
        "lr": 0.01,
        "scheduler": "cosine",
    }
    c = compare([Path(cfg.paths.output_dir).parent])
    assert list(c.groups.index) == ["+recipe=adam", "+recipe=adam_then_sgd"]
    assert c.groups["runs"].tolist() == [2, 2]


# --- lr scaling


def test_lr_scaling_is_applied_and_recorded(make_cfg, folder):
    cfg = make_cfg(*folder, "optimizer.lr_scaling=sqrt", "optimizer.reference_batch_size=16",
                   "trainer.accumulate_grad_batches=2", "scheduler=constant", "trainer.epochs=1")  # fmt: skip
    summary, rows = run(cfg)
    assert summary["lr_scaling"]["effective_batch_size"] == 8
    assert summary["lr_scaling"]["lr"] == pytest.approx(1e-3 * (8 / 16) ** 0.5)
    assert [r["lr"] for r in steps(rows)] == [pytest.approx(1e-3 * 0.5**0.5)] * 3
    on_disk = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    assert on_disk["lr_scaling"]["factor"] == pytest.approx(0.5**0.5)


# --- the preview shows what training does


def test_preview_rows_equal_the_training_rows(make_cfg, folder):
    """lrlab-schedule's CSV for a config with phases, params, stages with batch sizes and an
    optimizer switch equals the values the run logs (preview row `step` = metrics row
    `step + 1`)."""
    from lrlab.tasks.preview import schedule_trace

    overrides = [
        *folder,
        "optimizer=adamw",
        "scheduler=trapezoid",
        "scheduler/params=weight_decay_rise",
        "resizing.stages=[{epochs:1,size:8,batch_size:8},{size:12}]",
        "optimizer_switch=adam_to_sgd",
        "optimizer_switch.epoch=2",
        "trainer.epochs=3",
        "trainer.accumulate_grad_batches=2",
    ]
    _, rows = run(make_cfg(*overrides))
    trained = steps(rows)
    preview, spe, header, _ = schedule_trace(make_cfg(*overrides, out="preview"))
    assert spe == 3 and len(preview) == len(trained) == 2 + 3 + 3
    columns = {name: i for i, name in enumerate(header)}
    for p, r in zip(preview, trained, strict=True):
        assert r["step"] == p[0] + 1 and r["epoch"] == pytest.approx(
            p[1] + 1 / (2 if p[0] < 2 else 3)
        )
        assert r["lr_groups"] == pytest.approx(p[2 : columns["momentum"]], rel=1e-12)
        for key in ("momentum", "weight_decay", "image_size", "batch_size"):
            expected = p[columns[key]]  # None: not scheduled at this step (after the switch)
            if expected is None:
                assert r.get(key) is None, (key, r["step"])
            else:
                assert r.get(key) == pytest.approx(expected, rel=1e-12), (key, r["step"])


# --- a user's schedule (docs/extending.md, "A schedule") and a torch scheduler by _target_


def extending_blocks() -> dict[str, str]:
    """The code blocks of docs/extending.md's schedule section, by language."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text()
    section = text.split("## A schedule\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)[:2])


def test_the_extending_walk_previews_trains_resumes_and_refuses(make_cfg, folder, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    """The doc's my_schedules.py and YAML, outside src/lrlab, as a reader would use them."""
    import math
    import sys

    from lrlab.tasks.config import check_config
    from lrlab.tasks.preview import schedule_trace

    blocks = extending_blocks()
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "my_schedules.py").write_text(blocks["python"])
    (tmp_path / "myconf" / "scheduler").mkdir(parents=True)
    (tmp_path / "myconf" / "scheduler" / "inverse_sqrt.yaml").write_text(blocks["yaml"])
    sys.path.insert(0, str(tmp_path / "code"))
    try:
        overrides = [*folder, f"hydra.searchpath=[file://{tmp_path / 'myconf'}]",
                     "scheduler=inverse_sqrt", "scheduler.warmup_steps=4", "trainer.epochs=2"]  # fmt: skip
        preview, _, header, _ = schedule_trace(make_cfg(*overrides, out="preview"))
        full = steps(resumed_equals_uninterrupted(make_cfg, monkeypatch, overrides, cut=7))
        bad = make_cfg(*overrides, "scheduler.warmup_steps=0", out="bad")
        with pytest.raises(ConfigError, match=re.escape("scheduler.warmup_steps=0: must be an")):
            check_config(bad)
    finally:
        sys.path.remove(str(tmp_path / "code"))
        sys.modules.pop("my_schedules", None)
    expected = [1e-3 * min((t + 1) / 4, math.sqrt(4 / (t + 1))) for t in range(12)]
    assert [r["lr"] for r in full] == pytest.approx(expected, rel=1e-12)
    assert [p[header.index("lr")] for p in preview] == [r["lr"] for r in full]


def test_a_torch_scheduler_previews_trains_and_resumes_exactly(make_cfg, folder, monkeypatch):
    from lrlab.tasks.preview import schedule_trace

    overrides = [*folder, "scheduler=torch_steplr", "scheduler.step_size=5", "trainer.epochs=2"]
    full = steps(resumed_equals_uninterrupted(make_cfg, monkeypatch, overrides, cut=7))
    assert [r["lr"] for r in full] == pytest.approx([1e-3 * 0.5 ** (t // 5) for t in range(12)])
    preview, _, header, _ = schedule_trace(make_cfg(*overrides, out="preview"))
    assert [p[header.index("lr")] for p in preview] == [r["lr"] for r in full]
