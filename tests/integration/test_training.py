from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

from lrlab.engine import loop
from lrlab.engine.step import TrainStep
from lrlab.errors import ConfigError
from lrlab.models import build_model
from lrlab.optim import build_scheduler
from lrlab.tasks import build
from lrlab.tasks.train import train
from lrlab.tracking import read_jsonl
from tests.helpers import CONF, FLOWERS, build_optimizer_from, compose_cfg, requires_flowers

OPTIMIZERS = sorted(p.stem for p in (CONF / "optimizer").glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (CONF / "scheduler").glob("*.yaml"))
FAST = ["trainer.epochs=2", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2"]


def test_the_seed_optimizers_and_core_schedules_exist():
    assert {"sgd", "adam", "adamw", "adamax", "adagrad", "adadelta", "rmsprop"} <= set(OPTIMIZERS)
    assert {"constant", "onecycle"} <= set(SCHEDULERS)


@functools.cache
def composed(group: str, option: str) -> DictConfig:
    """`group=option` composed once (read only: the tests below take their nodes from it)."""
    return compose_cfg([f"{group}={option}"], Path("unused"))


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_optimizer_and_scheduler_composes_and_builds(optimizer, scheduler):
    # The groups are independent: each pair is the optimizer's config with the schedule's node
    # (11 + 11 compositions instead of 121).
    cfg = composed("optimizer", optimizer).copy()
    with open_dict(cfg):
        cfg.scheduler = composed("scheduler", scheduler).scheduler
    model = build_model(cfg.model, num_classes=10, in_channels=1, image_size=16)
    opt = build_optimizer_from(cfg, model)
    assert type(opt).__name__.lower() == cfg.optimizer._target_.rsplit(".", 1)[1].lower()
    epochs = 5 if scheduler == "fine_tune" else 2  # fastai's fine_tune(4): 1 + 4 epochs
    if scheduler == "fine_tune" and not ("betas" in opt.defaults or "momentum" in opt.defaults):
        with pytest.raises(ConfigError, match="scheduler.params.momentum: .* no number"):
            build_scheduler(cfg.scheduler, opt, steps_per_epoch=5, epochs=epochs)
        return
    sched = build_scheduler(cfg.scheduler, opt, steps_per_epoch=5, epochs=epochs)
    model(torch.randn(2, 1, 16, 16)).sum().backward()
    for _ in range(10):
        opt.step()
        sched.step()
    sched.epoch_end(1.0)
    assert all(0 <= g["lr"] <= cfg.optimizer.lr for g in opt.param_groups)


def run(cfg) -> tuple[dict, list[dict]]:
    summary = train(cfg)
    out = Path(cfg.paths.output_dir)
    assert json.loads((out / "summary.json").read_text())["status"] == summary["status"]
    return summary, read_jsonl(out / "metrics.jsonl")


def test_records_have_the_documented_fields(recorded_run):
    cfg, summary, rows = recorded_run  # conftest.RECORDED_RUN: 2 epochs of 4 steps, every step
    assert json.loads(Path(cfg.paths.output_dir, "summary.json").read_text()) == summary
    steps = [r for r in rows if r["type"] == "step"]
    epochs = [r for r in rows if r["type"] == "epoch"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r["epoch"] for r in steps] == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert all(r["lr"] == r["lr_groups"][0] and r["momentum"] is not None for r in steps)
    assert [r["epoch"] for r in epochs] == [1, 2]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s"):
        assert all(isinstance(r[key], float) for r in epochs)
    assert summary["status"] == "completed"
    assert summary["lr_group_names"][0] == "head" and len(summary["lr_group_names"]) == len(
        steps[0]["lr_groups"]
    )
    assert summary["epochs_completed"] == 2 and summary["steps"] == 8
    assert summary["final_val_acc"] == epochs[-1]["val_acc"]
    assert summary["best_val_acc"] == max(r["val_acc"] for r in epochs)
    assert summary["versions"]["torch"] == torch.__version__.split("+")[0]
    assert Path(cfg.paths.output_dir, "checkpoints", "last.ckpt").is_file()


def test_same_seed_gives_identical_metrics(make_cfg):
    def metrics(out: str) -> list[dict]:
        cfg = make_cfg(*FAST, "seed=7", out=out)
        _, rows = run(cfg)
        return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]

    first, second = metrics("a"), metrics("b")
    assert first == second
    other = make_cfg(*FAST, "seed=8", out="c")
    assert [r["train_loss"] for r in run(other)[1]] != [r["train_loss"] for r in first]


def test_gradient_accumulation_counts_optimizer_steps(make_cfg):
    summary, rows = run(
        make_cfg(
            "trainer.epochs=1",
            "trainer.limit_train_batches=5",
            "trainer.accumulate_grad_batches=2",
            "trainer.log_every_n_steps=1",
        )
    )
    assert summary["steps"] == 3  # ceil(5 / 2)
    assert [r["epoch"] for r in rows if r["type"] == "step"] == pytest.approx(
        [1 / 3, 2 / 3, 1.0], abs=1e-5
    )


def test_train_step_accumulation_equals_one_big_batch():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    twin = torch.nn.Linear(4, 3)
    twin.load_state_dict(model.state_dict())
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    device = torch.device("cpu")
    a = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), device)
    b = TrainStep(twin, torch.optim.SGD(twin.parameters(), lr=0.1), device)
    loss_a, correct_a, n_a = a([(x[:4], y[:4]), (x[4:], y[4:])])  # uneven micro-batches
    loss_b, correct_b, n_b = b([(x, y)])
    assert n_a == n_b == 6 and correct_a == correct_b
    assert torch.allclose(loss_a, loss_b)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_grad_clip_bounds_the_update():
    model = torch.nn.Linear(2, 2, bias=False)
    torch.nn.init.zeros_(model.weight)
    before = model.weight.detach().clone()
    step = TrainStep(
        model, torch.optim.SGD(model.parameters(), lr=1.0), torch.device("cpu"), grad_clip=0.01
    )
    step([(torch.full((1, 2), 100.0), torch.tensor([0]))])
    assert torch.linalg.norm(model.weight.detach() - before).item() == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=0", "optimizer.lr"),
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("trainer.epochs=0", "trainer.epochs"),
        ("data.batch_size=0", "data.batch_size"),
        ("trainer.precision=8", "trainer.precision"),
        ("trainer.accumulate_grad_batches=0", "accumulate_grad_batches"),
        ("trainer.device=tpu", "trainer.device"),
        ("scheduler=onecycle scheduler.pct_start=1.5", "scheduler.pct_start"),
        ("trainer.limit_train_batches=-1", "trainer.limit_train_batches"),
        ("trainer.overfit_batches=-2", "trainer.overfit_batches"),
        ("trainer.divergence_threshold=-1", "trainer.divergence_threshold"),
        ("trainer.num_threads=0", "trainer.num_threads"),
        ("model.init=foo", "model.init"),
    ],
)
def test_bad_values_fail_before_training_and_are_recorded(make_cfg, override, message):
    cfg = make_cfg(*override.split())
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    summary = json.loads(Path(cfg.paths.output_dir, "summary.json").read_text())
    assert summary["status"] == "failed" and message in summary["error"]
    assert read_jsonl(Path(cfg.paths.output_dir, "metrics.jsonl")) == []


def test_divergence_stops_the_run_and_keeps_records(make_cfg):
    summary, rows = run(
        make_cfg(
            *FAST,
            "optimizer=sgd",
            "optimizer.lr=1e6",
            "scheduler=constant",
            "trainer.log_every_n_steps=1",
        )
    )
    assert summary["status"] == "diverged" and "training loss" in summary["error"]
    assert rows and summary["epochs_completed"] == 0


def test_overfit_one_batch_drives_the_loss_to_zero(make_cfg):
    summary, rows = run(make_cfg("debug=overfit", "trainer.epochs=40", "model.dropout=0"))
    losses = [r["train_loss"] for r in rows if r["type"] == "step"]
    assert losses[0] > 1.0 and losses[-1] < 0.02
    assert summary["final_val_acc"] == 1.0


def interrupted_run(cfg, monkeypatch, after_epochs: int) -> Path:
    """Run `cfg` and press Ctrl-C during the validation after `after_epochs` epochs."""
    real_evaluate, calls = loop.evaluate, []

    def evaluate_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == after_epochs + 1:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", evaluate_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(loop, "evaluate", real_evaluate)
    out = Path(cfg.paths.output_dir)
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"
    return out / "checkpoints" / "last.ckpt"


def without_times(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def test_resume_continues_exactly_like_an_uninterrupted_run(make_cfg, monkeypatch):
    common = ["trainer.epochs=3", "trainer.limit_train_batches=4", "trainer.log_every_n_steps=1"]
    common += ["optimizer=sgd", "scheduler=onecycle"]
    full_summary, full = run(make_cfg(*common, out="full"))
    ckpt = interrupted_run(make_cfg(*common, out="cut"), monkeypatch, after_epochs=1)

    resumed_summary, resumed = run(make_cfg(*common, f"trainer.resume={ckpt}", out="resumed"))
    # The resumed run dir holds the whole run (the first epoch copied from the cut one), and
    # every lr, momentum and loss equals the uninterrupted run's.
    assert [r["step"] for r in resumed if r["type"] == "step"] == list(range(1, 13))
    assert without_times(resumed) == without_times(full)
    for key in ("epochs_completed", "steps", "best_epoch"):
        assert resumed_summary[key] == full_summary[key]


def test_resume_with_more_epochs_holds_the_planned_schedule_end(make_cfg):
    common = ["trainer.limit_train_batches=3", "trainer.log_every_n_steps=1", "scheduler=onecycle"]
    first = make_cfg(*common, "trainer.epochs=2", out="first")
    _, rows = run(first)
    ckpt = Path(first.paths.output_dir, "checkpoints", "last.ckpt")
    _, longer = run(make_cfg(*common, "trainer.epochs=4", f"trainer.resume={ckpt}", out="longer"))
    planned_end = [r["lr"] for r in rows if r["type"] == "step"][-1]
    extra = [r["lr"] for r in longer if r["type"] == "step" and r["step"] > 6]
    assert len(extra) == 6 and max(extra) <= planned_end * 1.0001
    assert planned_end < 1e-6  # onecycle's end: peak / 25 / 1e4

    with pytest.raises(ConfigError, match=r"differs .* in trainer.limit_train_batches \(3 -> 4\)"):
        train(
            make_cfg(
                *common,
                "trainer.limit_train_batches=4",
                "trainer.epochs=4",
                f"trainer.resume={ckpt}",
                out="x",
            )
        )
    with pytest.raises(ConfigError, match=r"optimizer.lr \(0.001 -> 'auto'\)"):
        train(
            make_cfg(
                *common, "trainer.epochs=4", "optimizer.lr=auto", f"trainer.resume={ckpt}", out="z"
            )
        )
    with pytest.raises(ConfigError, match="trainer.epochs=2"):
        train(make_cfg(*common, "trainer.epochs=2", f"trainer.resume={ckpt}", out="y"))


def test_step_rows_show_the_lr_the_step_trained_with(recorded_run):
    cfg, _, rows = recorded_run
    assert cfg.scheduler._target_ == "lrlab.optim.schedules.OneCycle" and cfg.optimizer.lr == 0.05
    first = next(r for r in rows if r["type"] == "step")
    assert first["step"] == 1 and first["lr"] == pytest.approx(0.05 / 25)  # onecycle's start
    assert first["momentum"] == pytest.approx(0.95)


def test_resume_from_a_missing_file_is_a_clear_error(make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="trainer.resume"):
        train(make_cfg(f"trainer.resume={tmp_path}/nope.ckpt"))


@pytest.mark.slow
@requires_flowers()
def test_flowers_short_epoch(make_cfg):
    summary, rows = run(
        make_cfg(
            "data=flowers",
            f"data.root={FLOWERS}",
            "data.image_size=32",
            "trainer.epochs=1",
            "trainer.limit_train_batches=20",
            "trainer.limit_val_batches=5",
        )
    )
    assert summary["status"] == "completed"
    assert 0.0 <= summary["final_val_acc"] <= 1.0 and rows[-1]["val_loss"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["plateau", "cosine"])
def test_resume_of_an_auto_lr_run_reuses_the_found_lr(make_cfg, monkeypatch, scheduler):
    common = ["optimizer.lr=auto", "lr_find.num_it=20", "trainer.limit_train_batches=4"]
    common += [f"scheduler={scheduler}", "trainer.log_every_n_steps=1", "trainer.epochs=3"]
    full_summary, full = run(make_cfg(*common, out="full"))
    ckpt = interrupted_run(make_cfg(*common, out="cut"), monkeypatch, after_epochs=1)
    resumed_summary, resumed = run(make_cfg(*common, f"trainer.resume={ckpt}", out="resumed"))
    assert resumed_summary["lr_find"] == full_summary["lr_find"]
    assert not (Path(make_cfg(out="resumed").paths.output_dir) / "lr_find.json").exists()
    lrs = [r["lr_groups"] for r in resumed if r["type"] == "step"]
    assert lrs == [r["lr_groups"] for r in full if r["type"] == "step"]


def test_channels_last_and_num_threads_reach_the_model_and_torch(make_cfg):
    threads = torch.get_num_threads()
    try:
        conv = build.build_components(make_cfg("trainer.num_threads=1")).model.features[1][0]
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert torch.get_num_threads() == 1
        plain = build.build_components(make_cfg("trainer.channels_last=false"))
        assert not plain.model.features[1][0].weight.is_contiguous(
            memory_format=torch.channels_last
        )
    finally:
        torch.set_num_threads(threads)


def test_small_cpu_batches_train_on_one_thread_and_the_next_job_gets_the_default_back(
    make_cfg, monkeypatch
):
    monkeypatch.setattr(build, "TORCH_DEFAULT_THREADS", 2)
    threads = torch.get_num_threads()
    try:
        build.build_components(make_cfg("data.image_size=16", "data.batch_size=64"))  # 16,384
        assert torch.get_num_threads() == 1
        # A sequential sweep's next job, with batches big enough for two threads.
        build.build_components(make_cfg("data.image_size=16", "data.batch_size=128"))  # 32,768
        assert torch.get_num_threads() == 2
        build.build_components(make_cfg("data.image_size=16", "trainer.num_threads=2"))
        assert torch.get_num_threads() == 2  # the user's choice wins
    finally:
        torch.set_num_threads(threads)
