"""`TrainState.stop`: the loop's two ways to end early, through the real `fit` on a tiny model.

A callback's `stop.after_epoch` ends the run after that epoch (status `completed`); a signal
recorded in `stop.signal` ends it after the current optimizer step, which the callbacks see
as `stop.now` (they checkpoint on it)."""

from __future__ import annotations

import os
import signal

import torch
from torch import nn

from lrlab.engine.callbacks import Callback
from lrlab.engine.loop import fit
from lrlab.engine.signals import StopSignals
from lrlab.engine.state import Stop, TrainState
from lrlab.engine.step import TrainStep


class ConstantSchedule:
    def step(self) -> None: ...
    def epoch_end(self, val_loss: float) -> None: ...
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None: ...


def tiny_state(epochs: int = 5, steps_per_epoch: int = 4) -> TrainState:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.device("cpu"))
    batches = [(torch.randn(2, 3), torch.tensor([0, 1])) for _ in range(steps_per_epoch)]
    return TrainState(
        model, ConstantSchedule(), step, batches, batches[:1], epochs, steps_per_epoch
    )


class Recorder(Callback):
    def __init__(self, stop_after_epoch: int | None = None, signal_at_step: int | None = None):
        self.stop_after_epoch, self.signal_at_step = stop_after_epoch, signal_at_step
        self.now_seen: list[tuple[int, tuple[str, str] | None]] = []

    def on_step_start(self, state: TrainState) -> None:
        if state.step + 1 == self.signal_at_step:
            state.stop.signal = ("preempted", "stopped by the test")

    def on_step_end(self, state: TrainState, result) -> None:
        self.now_seen.append((state.step, state.stop.now))

    def on_validation_end(self, state: TrainState) -> None:
        if state.epoch == self.stop_after_epoch:
            state.stop.after_epoch = "the test's reason"


def test_a_callbacks_stop_ends_the_run_after_that_epoch_as_completed():
    state = tiny_state()
    fit(state, [Recorder(stop_after_epoch=2)])
    assert (state.status, state.epoch, state.step) == ("completed", 2, 8)
    assert state.stop.after_epoch == "the test's reason"


def test_a_signal_ends_the_run_after_the_step_the_callbacks_saw_it_in():
    state, recorder = tiny_state(), Recorder(signal_at_step=6)
    fit(state, [recorder])
    assert (state.status, state.error) == ("preempted", "stopped by the test")
    assert (state.epoch, state.step, state.step_in_epoch) == (1, 6, 2)  # mid-epoch, step 6 done
    assert recorder.now_seen[-1] == (6, ("preempted", "stopped by the test"))
    assert all(now is None for _, now in recorder.now_seen[:-1])


def test_stop_signals_record_into_the_stop_they_are_attached_to():
    stop = Stop()
    with StopSignals() as signals:
        signals.attach(stop)
        assert stop.signal is None
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.signal == ("preempted", "stopped by SIGUSR1")
