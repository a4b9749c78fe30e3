"""The optional callbacks (early stopping, best checkpoint, EMA) and the callback protocol."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lrlab.callbacks import EMA, BestCheckpoint, EarlyStopping
from lrlab.engine.callbacks import Callback, CallbackList, callback_states, load_callback_states
from lrlab.engine.state import Stop
from lrlab.errors import ConfigError


def epochs_of(callback, values, metric="val_acc", **state):
    """Feed `values` as one epoch each; return the epoch after which the run was told to stop."""
    s = SimpleNamespace(metrics={}, stop=Stop(), epoch=0, **state)
    for value in values:
        s.epoch += 1
        s.metrics = {metric: value}
        callback.on_validation_end(s)
        if s.stop.after_epoch is not None:
            return s.epoch, s
    return None, s


@pytest.mark.parametrize(
    ("values", "kwargs", "stop"),
    [
        ([0.5, 0.6, 0.6, 0.6, 0.6], {"patience": 3}, 5),  # no better for 3 epochs
        ([0.5, 0.6, 0.59, 0.61, 0.6, 0.6], {"patience": 2}, 6),  # 0.61 reset the count
        ([0.5, 0.6, 0.605, 0.609, 0.608], {"patience": 3, "min_delta": 0.01}, 5),  # too little
        ([0.5, 0.6, 0.7, 0.8], {"patience": 1}, None),
        ([0.5, math.nan, math.nan], {"patience": 2}, 3),  # NaN never improves
        ([1.0, 0.9, 0.95, 0.93], {"patience": 2, "mode": "min", "monitor": "val_loss"}, 4),
    ],
)
def test_early_stopping_counts_epochs_without_improvement(values, kwargs, stop):
    metric = kwargs.get("monitor", "val_acc")
    got, state = epochs_of(EarlyStopping(**kwargs), values, metric)
    assert got == stop
    if stop:
        assert state.stop.after_epoch.startswith(f"early_stopping: {metric} did not improve")


def test_early_stopping_state_survives_a_resume():
    first = EarlyStopping(patience=3)
    epochs_of(first, [0.5, 0.6, 0.6])  # best 0.6, one bad epoch
    resumed = EarlyStopping(patience=3)
    resumed.load_state_dict(first.state_dict())
    assert epochs_of(resumed, [0.6, 0.6])[0] == 2  # two more bad epochs: three in all


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"monitor": "val_f1"}, "callbacks.early_stopping.monitor='val_f1'"),
        ({"mode": "up"}, "callbacks.early_stopping.mode='up'"),
        ({"patience": 0}, "callbacks.early_stopping.patience must be >= 1"),
        ({"min_delta": -1}, "callbacks.early_stopping.min_delta must be >= 0"),
    ],
)
def test_early_stopping_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        EarlyStopping(**kwargs)


class FileCheckpointer:
    """Writes the epoch into the checkpoint file, so a test can see which epoch each holds."""

    def save(self, path: Path, state) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(state.epoch))


def test_best_checkpoint_keeps_the_best_epoch(tmp_path):
    cb = BestCheckpoint()
    epochs_of(cb, [0.5, 0.7, 0.6, 0.7, 0.65], run_dir=tmp_path, checkpointer=FileCheckpointer())
    assert (tmp_path / "checkpoints" / "best.ckpt").read_text() == "2"  # ties: the first
    assert not (tmp_path / "checkpoints" / "top").exists()


def test_best_checkpoint_top_k_keeps_k_files(tmp_path):
    cb = BestCheckpoint(monitor="val_loss", mode="min", save_top_k=2)
    losses = [1.0, 0.8, 0.9, 0.7, 0.75]
    epochs_of(cb, losses, "val_loss", run_dir=tmp_path, checkpointer=FileCheckpointer())
    top = sorted(p.name for p in (tmp_path / "checkpoints" / "top").iterdir())
    assert top == ["epoch=004.ckpt", "epoch=005.ckpt"]  # 0.7 and 0.75
    assert (tmp_path / "checkpoints" / "best.ckpt").read_text() == "4"
    assert cb.state_dict() == {"top": [[0.7, 4], [0.75, 5]]}


def test_ema_is_torchs_exponential_average_and_is_validated(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    state = SimpleNamespace(model=model, eval_model=model)
    ema = EMA(decay=0.9)
    ema.on_fit_start(state)
    assert state.eval_model is ema.average  # validation runs the average
    expected: dict[str, torch.Tensor] = {}
    for _ in range(4):
        loss = model(torch.randn(8, 3)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.on_step_end(state, None)
        for k, v in model.state_dict().items():  # parameters and BatchNorm statistics
            if v.is_floating_point():
                # torch's AveragedModel: the first update copies, then 0.9 * average + 0.1 * new
                expected[k] = 0.9 * expected[k] + 0.1 * v if k in expected else v.clone()
    averaged = {k.removeprefix("module."): v for k, v in ema.average.state_dict().items()}
    assert {"0.weight", "1.running_mean"} <= set(expected)
    for key, value in expected.items():
        assert torch.allclose(averaged[key], value, atol=1e-6), key
    # saved and restored: the resumed average is the same tensors
    again = EMA(decay=0.9)
    again.load_state_dict(ema.state_dict())
    again.on_fit_start(SimpleNamespace(model=model, eval_model=model))
    for a, b in zip(
        ema.average.state_dict().values(), again.average.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


def test_ema_without_validation_keeps_the_raw_model_for_validation():
    model = torch.nn.Linear(2, 2)
    state = SimpleNamespace(model=model, eval_model=model)
    EMA(validate=False).on_fit_start(state)
    assert state.eval_model is model
    with pytest.raises(ConfigError, match=r"callbacks\.ema\.decay"):
        EMA(decay=1.5)


def test_callback_list_calls_hooks_in_order_and_accepts_plain_classes():
    calls = []

    class Full(Callback):
        def on_epoch_start(self, state):
            calls.append("full")

    class Plain:  # only the hook it needs, no base class
        def on_epoch_start(self, state):
            calls.append("plain")

        def on_fit_end(self, state):
            calls.append("end")

    cbs = CallbackList([Full(), Plain(), Full()])
    cbs.on_epoch_start(None)
    cbs.on_step_end(None, None)  # nobody has it: nothing happens
    cbs.on_fit_end(None)
    assert calls == ["full", "plain", "full", "end"]


def test_callback_states_are_keyed_by_class_and_restored():
    a, b, plain = EarlyStopping(), EarlyStopping(patience=5), object()
    a.best, b.best = 0.3, 0.4
    states = callback_states([a, b, plain])
    assert set(states) == {"EarlyStopping.0", "EarlyStopping.1"}
    fresh = [EarlyStopping(), EarlyStopping(patience=5), object()]
    load_callback_states(fresh, states)
    assert (fresh[0].best, fresh[1].best) == (0.3, 0.4)
