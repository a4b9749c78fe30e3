"""An exponential moving average of the weights, validated in place of the raw weights
(`callbacks=ema`): torch's `AveragedModel` with its EMA averaging function, updated after every
optimizer step; BatchNorm statistics are averaged too (`use_buffers`)."""

from __future__ import annotations

from typing import Any

from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from lrlab.engine.callbacks import Callback
from lrlab.engine.state import TrainState
from lrlab.engine.step import StepResult
from lrlab.errors import ConfigError


class EMA(Callback):
    def __init__(self, decay: float = 0.999, validate: bool = True) -> None:
        if not 0 < decay < 1:
            raise ConfigError(f"callbacks.ema.decay must be in (0, 1), got {decay}")
        self.decay, self.validate = decay, validate
        self.average: AveragedModel | None = None
        self._loaded: dict[str, Any] | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self.average = AveragedModel(
            state.model, multi_avg_fn=get_ema_multi_avg_fn(self.decay), use_buffers=True
        )
        if self._loaded is not None:  # a resumed run: the average it had
            self.average.load_state_dict(self._loaded)
        if self.validate:
            state.eval_model = self.average

    def on_step_end(self, state: TrainState, result: StepResult) -> None:
        self.average.update_parameters(state.model)

    def state_dict(self) -> dict[str, Any]:
        return self.average.state_dict() if self.average is not None else self._loaded or {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._loaded = state
