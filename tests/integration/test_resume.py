"""Stopping and resuming inside one process: a signal at an exact step (sent by a callback),
`trainer.resume=auto`, checked resumes and what the summary claims. The same through
`train.py` with real signals from outside: test_signals.py."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch

from lrlab.engine import checkpoint as checkpoint_module
from lrlab.errors import ConfigError
from lrlab.tasks.train import train
from lrlab.tracking import read_jsonl
from tests.helpers.interrupts import SignalAt, add_callback

# 3 epochs of 6 optimizer steps, a step row every step.
COMMON = [
    "trainer.epochs=3",
    "trainer.limit_train_batches=6",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.num_threads=1",
    "optimizer=sgd",
    "scheduler=onecycle",
]
SPE = 6


def records(cfg) -> tuple[dict, list[dict]]:
    out = Path(cfg.paths.output_dir)
    summary = json.loads((out / "summary.json").read_text())
    rows = [
        {k: v for k, v in r.items() if k != "epoch_time_s"}
        for r in read_jsonl(out / "metrics.jsonl")
    ]
    return summary, rows


def checkpoint_of(cfg) -> dict:
    return torch.load(Path(cfg.paths.output_dir, "checkpoints", "last.ckpt"), weights_only=True)


def auto(cfg):
    """The same config with trainer.resume=auto (what re-running the same command gives)."""
    cfg = cfg.copy()
    cfg.trainer.resume = "auto"
    return cfg


def saves(monkeypatch) -> list[tuple[int, int]]:
    """(epoch, step) of every checkpoint written from now on."""
    written: list[tuple[int, int]] = []
    real_save = checkpoint_module.Checkpointer.save

    def save(self, path, state):
        written.append((state.epoch, state.step))
        real_save(self, path, state)

    monkeypatch.setattr(checkpoint_module.Checkpointer, "save", save)
    return written


def uninterrupted(make_cfg, *extra: str) -> tuple[dict, list[dict]]:
    cfg = make_cfg(*COMMON, *extra, out="full")
    train(cfg)
    return records(cfg)


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGTERM, "preempted"), (signal.SIGUSR1, "preempted"), (signal.SIGINT, "interrupted")],
)
def test_a_signal_mid_epoch_checkpoints_that_step_and_auto_resume_continues_exactly(
    make_cfg, monkeypatch, signum, status
):
    full_summary, full_rows = uninterrupted(make_cfg)
    cfg = make_cfg(*COMMON, out="cut")
    with monkeypatch.context() as m:
        written = saves(m)
        # Arrives while step 9 (the 3rd of epoch 2) computes: that step is finished first.
        add_callback(m, lambda: SignalAt(signum, "on_step_start", step=9))
        stopped = train(cfg)
    assert stopped["status"] == status and stopped["error"] == f"stopped by {signum.name}"
    assert written == [(1, 6), (1, 9)]  # epoch 1's end, then the step the signal came in
    ckpt = checkpoint_of(cfg)
    assert (ckpt["epoch"], ckpt["step"], ckpt["step_in_epoch"]) == (1, 9, 3)
    summary, rows = records(cfg)
    assert summary["status"] == status and summary["checkpoint"] == {"epoch": 1, "step": 9}
    assert (summary["epochs_completed"], summary["steps"]) == (1, 9)
    assert rows == full_rows[: len(rows)] and rows[-1]["step"] == 9

    resumed = train(auto(cfg))
    summary, rows = records(cfg)
    assert rows == full_rows  # every row once, each equal to the uninterrupted run's
    assert resumed["status"] == "completed" and resumed["resumed_from"]["step"] == 9
    for key in ("epochs_completed", "steps", "best_val_acc", "best_epoch", "final_val_loss"):
        assert summary[key] == full_summary[key]


def test_a_signal_during_the_callbacks_stops_after_the_next_step_with_one_checkpoint(
    make_cfg, monkeypatch
):
    """The loop acts on a signal at a step's end only if it came before that step's callbacks
    ran: they all see the same decision, so exactly one checkpoint is written."""
    _, full_rows = uninterrupted(make_cfg)
    cfg = make_cfg(*COMMON, out="cut")
    with monkeypatch.context() as m:
        written = saves(m)
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_step_end", step=8))
        train(cfg)
    assert written == [(1, 6), (1, 9)]
    train(auto(cfg))
    assert records(cfg)[1] == full_rows


def test_a_signal_during_the_last_validation_completes_the_run(make_cfg, monkeypatch):
    """Nothing is left to do: the run is `completed`, not `preempted` (a re-run with
    trainer.resume=auto would otherwise be refused: the checkpoint has every epoch)."""
    _full_summary, full_rows = uninterrupted(make_cfg)
    cfg = make_cfg(*COMMON, out="cut")
    with monkeypatch.context() as m:
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_train_epoch_end", epoch=3))
        summary = train(cfg)
    assert summary["status"] == "completed" and summary["error"] is None
    assert records(cfg)[1] == full_rows


def test_a_signal_during_an_earlier_validation_stops_at_the_epochs_end(make_cfg, monkeypatch):
    _, full_rows = uninterrupted(make_cfg)
    cfg = make_cfg(*COMMON, out="cut")
    with monkeypatch.context() as m:
        written = saves(m)
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_train_epoch_end", epoch=2))
        summary = train(cfg)
    assert summary["status"] == "preempted" and written[-1] == (2, 12)
    assert (summary["epochs_completed"], summary["steps"]) == (2, 12)
    train(auto(cfg))
    assert records(cfg)[1] == full_rows


def test_auto_resume_of_a_run_killed_after_its_last_checkpoint_finishes_it(make_cfg, monkeypatch):
    """Killed (SIGKILL) between the final checkpoint and the final summary: summary.json says
    `running`, the checkpoint holds every epoch. Re-running the same command completes it."""
    _full_summary, full_rows = uninterrupted(make_cfg)
    cfg = make_cfg(*COMMON, out="cut")
    train(cfg)
    out = Path(cfg.paths.output_dir)
    summary = json.loads((out / "summary.json").read_text())
    summary.update(status="running", epochs_completed=2, steps=12)  # its last write before
    (out / "summary.json").write_text(json.dumps(summary))
    resumed = train(auto(cfg))
    assert resumed["status"] == "completed"
    summary, rows = records(cfg)
    assert rows == full_rows and summary["epochs_completed"] == 3


def test_the_summary_never_claims_more_than_the_checkpoint_holds(make_cfg, monkeypatch):
    """A second Ctrl-C while epoch 2's checkpoint is written: the run stops at once
    (KeyboardInterrupt) with the checkpoint of epoch 1; the summary says so, and a resume
    redoes epoch 2 without a duplicate row."""
    _, full_rows = uninterrupted(make_cfg)
    cfg = make_cfg(*COMMON, out="cut")
    real_save = checkpoint_module.Checkpointer.save

    def save(self, path, state):
        if state.epoch == 2 and state.step_in_epoch == 0:
            raise KeyboardInterrupt
        real_save(self, path, state)

    with monkeypatch.context() as m:
        m.setattr(checkpoint_module.Checkpointer, "save", save)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    summary, _rows = records(cfg)
    assert summary["status"] == "interrupted" and checkpoint_of(cfg)["epoch"] == 1
    assert summary["checkpoint"] == {"epoch": 1, "step": 6}
    assert (summary["epochs_completed"], summary["steps"]) == (1, 6)
    assert summary["best_epoch"] in (None, 1)  # nothing from the epoch the checkpoint lacks
    train(auto(cfg))
    assert records(cfg)[1] == full_rows


def test_wall_time_of_a_resumed_run_includes_the_earlier_part(make_cfg, monkeypatch):
    cfg = make_cfg(*COMMON, out="cut")
    with monkeypatch.context() as m:
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_step_start", step=9))
        first = train(cfg)["wall_time_s"]
    t0 = time.perf_counter()
    resumed = train(auto(cfg))
    second = time.perf_counter() - t0
    # The checkpoint's wall time (taken just before the first part's summary) plus this part.
    assert resumed["wall_time_s"] > second + 0.8 * first
    assert resumed["wall_time_s"] <= second + first + 0.01


def test_summary_is_written_when_training_starts(make_cfg, monkeypatch):
    """A run killed in its first epoch still has a summary.json that says so."""
    cfg = make_cfg(*COMMON, out="run")
    seen = {}

    def look(state) -> None:
        seen.update(json.loads(Path(cfg.paths.output_dir, "summary.json").read_text()))

    class Look:
        def on_step_start(self, state) -> None:
            if state.step == 0:
                look(state)

    add_callback(monkeypatch, Look)
    train(cfg)
    assert seen["status"] == "running" and seen["epochs_completed"] == 0


def test_a_resumed_runs_summary_starts_at_the_checkpoint(make_cfg, monkeypatch):
    """Killed early in its resumed part, a run's summary says how far its checkpoint got."""
    cfg = make_cfg(*COMMON, out="cut")
    with monkeypatch.context() as m:
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_step_start", step=9))
        first = train(cfg)
    seen = {}

    class Look:
        def on_step_start(self, state) -> None:
            if not seen:
                seen.update(json.loads(Path(cfg.paths.output_dir, "summary.json").read_text()))

    add_callback(monkeypatch, Look)
    train(auto(cfg))
    assert seen["status"] == "running"
    assert (seen["epochs_completed"], seen["steps"]) == (1, 9)
    assert seen["best_val_acc"] == first["best_val_acc"]


def test_checkpoint_every_n_steps_writes_mid_epoch_checkpoints(make_cfg, monkeypatch):
    cfg = make_cfg(*COMMON, "trainer.checkpoint_every_n_steps=4", out="run")
    written = saves(monkeypatch)
    train(cfg)
    # every 4th step (step 12 also ends epoch 2: saved before and after its validation)
    assert written == [(0, 4), (1, 6), (1, 8), (1, 12), (2, 12), (2, 16), (3, 18)]


@pytest.mark.parametrize(
    "extra",
    [
        ["callbacks=[ema,early_stopping,best_checkpoint]", "callbacks.early_stopping.patience=1"],
        ["trainer.accumulate_grad_batches=2", "scheduler=plateau"],
        ["trainer.num_workers=2"],
    ],
    ids=["ema+early_stopping+best_checkpoint", "accumulation+plateau", "workers"],
)
def test_resume_mid_epoch_stays_exact(make_cfg, monkeypatch, extra):
    """Stateful callbacks, gradient accumulation, plateau's state and worker processes
    (their seeds and the data order) all continue exactly."""
    extra = [*extra, "trainer.epochs=4"]
    full_summary, full_rows = uninterrupted(make_cfg, *extra)
    cfg = make_cfg(*COMMON, *extra, out="cut")
    with monkeypatch.context() as m:
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_step_start", step=8))
        train(cfg)
    train(auto(cfg))
    summary, rows = records(cfg)
    assert rows == full_rows
    for key in ("epochs_completed", "steps", "best_val_acc", "stopped_early", "final_val_loss"):
        assert summary.get(key) == full_summary.get(key)
    best = Path(cfg.paths.output_dir, "checkpoints", "best.ckpt")
    if best.exists():  # BestCheckpoint: the same epoch, the same weights
        full_best = torch.load(tmp_dir(make_cfg, "full") / "checkpoints" / "best.ckpt")
        resumed_best = torch.load(best)
        assert resumed_best["epoch"] == full_best["epoch"]
        for name, tensor in full_best["model"].items():
            assert torch.equal(resumed_best["model"][name], tensor), name


def tmp_dir(make_cfg, out: str) -> Path:
    return Path(make_cfg(out=out).paths.output_dir)


def test_resume_of_an_augmented_image_folder_stays_exact(make_cfg, monkeypatch, image_folder):
    """Random crops and flips: the RNG after the replayed part of the epoch lines up."""
    data = ["data=imagefolder", f"data.root={image_folder}", "data.image_size=16"]
    data += ["data.batch_size=4", "data.augment=true"]
    _full_summary, full_rows = uninterrupted(make_cfg, *data)
    cfg = make_cfg(*COMMON, *data, out="cut")
    with monkeypatch.context() as m:
        add_callback(m, lambda: SignalAt(signal.SIGTERM, "on_step_start", step=10))
        train(cfg)
    assert checkpoint_of(cfg)["step_in_epoch"] == 4
    train(auto(cfg))
    assert records(cfg)[1] == full_rows


# --- what a resume may change


@pytest.fixture
def one_epoch(make_cfg):
    """A finished 1-epoch run (2 steps) and its checkpoint."""
    cfg = make_cfg(*COMMON, "trainer.epochs=1", "trainer.limit_train_batches=2", out="first")
    train(cfg)
    return cfg, Path(cfg.paths.output_dir, "checkpoints", "last.ckpt")


@pytest.mark.parametrize(
    ("override", "keys"),
    [
        ("optimizer=adam", ["optimizer._target_ ('torch.optim.SGD' -> 'torch.optim.Adam')"]),
        ("optimizer.momentum=0.5", ["optimizer.momentum (0.9 -> 0.5)"]),
        ("model.channels=[8,16]", ["model.channels"]),
        ("model.dropout=0.1", ["model.dropout"]),
        (
            "scheduler=cosine",
            [
                "scheduler._target_ ('lrlab.optim.schedules.OneCycle' -> 'lrlab.optim.schedules.Cosine')"
            ],
        ),
        ("scheduler.pct_start=0.5", ["scheduler.pct_start (0.3 -> 0.5)"]),
        ("data.image_size=8", ["data.image_size (16 -> 8)"]),
        ("data.batch_size=32", ["data.batch_size (64 -> 32)"]),
        ("seed=1", ["seed (42 -> 1)"]),
        ("trainer.precision=bf16-mixed", ["trainer.precision"]),
        ("callbacks=ema", ["callbacks.ema._target_"]),
    ],
)
def test_resume_with_another_config_is_refused_naming_the_keys(make_cfg, one_epoch, override, keys):
    _, ckpt = one_epoch
    cfg = make_cfg(*COMMON, "trainer.limit_train_batches=2", override, f"trainer.resume={ckpt}")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    message = str(err.value)
    assert "\n" not in message and str(ckpt) in message
    for key in keys:
        assert key in message
    assert not Path(cfg.paths.output_dir).exists()  # refused before anything is written


def test_resume_accepts_the_keys_that_may_change(make_cfg, one_epoch, tmp_path):
    """Every key the docs list as changeable on resume, changed at once."""
    from lrlab.tasks.resume import RESUMABLE_KEYS

    _, ckpt = one_epoch
    changed = [
        "trainer.epochs=2",
        "trainer.progress_bar=true",
        "trainer.num_workers=1",
        "trainer.num_threads=2",
        "trainer.device=cpu",
        "trainer.log_every_n_steps=2",
        "trainer.checkpoint_every_n_steps=100",
        "logger=csv",
        "tags=[again]",
        "lr_find.num_it=50",
    ]
    for key in (c.split("=")[0] for c in changed):
        assert any(key == r or key.startswith(r + ".") for r in RESUMABLE_KEYS), key
    cfg = make_cfg(*COMMON, "trainer.limit_train_batches=2", *changed, f"trainer.resume={ckpt}")
    summary = train(cfg)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2


def test_resume_from_a_run_dir_equals_resume_from_its_checkpoint(make_cfg, one_epoch):
    first, ckpt = one_epoch
    by_file = make_cfg(*COMMON, "trainer.limit_train_batches=2", f"trainer.resume={ckpt}", out="a")
    by_dir = make_cfg(
        *COMMON,
        "trainer.limit_train_batches=2",
        f"trainer.resume={first.paths.output_dir}",
        out="b",
    )
    train(by_file)
    train(by_dir)
    assert records(by_dir)[1] == records(by_file)[1]
    assert records(by_dir)[0]["resumed_from"]["checkpoint"] == str(ckpt)


@pytest.mark.parametrize("damage", ["truncated", "random_bytes", "empty", "not_a_dict"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file(make_cfg, one_epoch, damage):
    first, ckpt = one_epoch
    data = ckpt.read_bytes()
    bad = {
        "truncated": data[: len(data) // 2],
        "random_bytes": bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8).tolist()),
        "empty": b"",
    }
    if damage == "not_a_dict":
        torch.save([1, 2, 3], ckpt)
    else:
        ckpt.write_bytes(bad[damage])
    for resume in (str(ckpt), "auto"):
        out = (
            first.paths.output_dir
            if resume == "auto"
            else Path(first.paths.output_dir).parent / "new"
        )
        cfg = make_cfg(
            *COMMON, "trainer.limit_train_batches=2", "trainer.epochs=2", f"trainer.resume={resume}"
        )
        cfg.paths.output_dir = str(out)
        before = {p: p.read_bytes() for p in Path(first.paths.output_dir).rglob("*") if p.is_file()}
        with pytest.raises(ConfigError) as err:
            train(cfg)
        message = str(err.value)
        assert "\n" not in message and message.startswith(str(ckpt))
        after = {p: p.read_bytes() for p in Path(first.paths.output_dir).rglob("*") if p.is_file()}
        assert after == before
