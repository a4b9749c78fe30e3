"""The callback protocol: hooks around the loop's epochs, steps and validation.

A callback subclasses `Callback` and overrides the hooks it needs; every hook gets the
`TrainState`. To stop: set `state.stop.after_epoch = "why"` (the run ends after this epoch, status
`completed`) or raise `StopTraining(status, message)` (it ends now). A callback with
`state_dict()`/`load_state_dict()` is saved in checkpoints and restored on resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult


class StopTraining(Exception):
    """Raised by a callback to end the run now with `status` (e.g. `diverged`)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class Callback:
    def on_fit_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_step_start(self, state: TrainState) -> None: ...  # the lr this step uses is set
    def on_step_end(self, state: TrainState, result: StepResult) -> None: ...
    def on_train_epoch_end(self, state: TrainState) -> None: ...  # train metrics, before val
    def on_validation_end(self, state: TrainState) -> None: ...  # state.metrics complete
    def on_epoch_end(self, state: TrainState) -> None: ...  # after every on_validation_end
    def on_fit_end(self, state: TrainState) -> None: ...  # always, with state.status set


HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList:
    """Calls each hook on every callback that has it, in order (duck typing: a plain class
    with only some of the hooks works too)."""

    def __init__(self, callbacks: Sequence[Any]) -> None:
        self.callbacks = list(callbacks)
        for hook in HOOKS:
            setattr(self, hook, self._caller(hook))

    def _caller(self, hook: str):
        methods = [m for cb in self.callbacks if (m := getattr(cb, hook, None)) is not None]

        def call(*args: Any) -> None:
            for method in methods:
                method(*args)

        return call


def callback_states(callbacks: Sequence[Callback]) -> dict[str, Any]:
    """Each stateful callback's `state_dict()`, keyed by `state_key(...)`."""
    return {
        state_key(cb, callbacks): cb.state_dict() for cb in callbacks if hasattr(cb, "state_dict")
    }


def load_callback_states(callbacks: Sequence[Callback], states: dict[str, Any]) -> None:
    for cb in callbacks:
        key = state_key(cb, callbacks)
        if hasattr(cb, "load_state_dict") and key in states:
            cb.load_state_dict(states[key])


def state_key(cb: Callback, callbacks: Sequence[Callback]) -> str:
    """The class name; numbered when a run has several callbacks of one class."""
    same = [c for c in callbacks if type(c) is type(cb)]
    name = type(cb).__name__
    return name if len(same) == 1 else f"{name}.{same.index(cb)}"
