"""Built-in callbacks (the protocol is `lrlab.engine.callbacks.Callback`).

Always on, configured by `trainer.*` and `model.*` keys: `Freezing`, `ProgressBar`,
`Divergence`, `RunRecords`, `Checkpointing`; with `resizing:` and `optimizer_switch:` configs,
`Resizing` and `OptimizerSwitch`. Chosen in the `callbacks` config group:
`EarlyStopping`, `BestCheckpoint`, `EMA`, and any of your own (`_target_: my.module.MyCallback`).
"""

from lrlab.callbacks.best_checkpoint import BestCheckpoint
from lrlab.callbacks.checkpointing import Checkpointing
from lrlab.callbacks.divergence import Divergence
from lrlab.callbacks.early_stopping import EarlyStopping
from lrlab.callbacks.ema import EMA
from lrlab.callbacks.freezing import Freezing
from lrlab.callbacks.optimizer_switch import OptimizerSwitch
from lrlab.callbacks.progress import ProgressBar
from lrlab.callbacks.records import RunRecords
from lrlab.callbacks.resizing import Resizing
from lrlab.engine.callbacks import Callback, StopTraining

__all__ = [
    "EMA",
    "BestCheckpoint",
    "Callback",
    "Checkpointing",
    "Divergence",
    "EarlyStopping",
    "Freezing",
    "OptimizerSwitch",
    "ProgressBar",
    "Resizing",
    "RunRecords",
    "StopTraining",
]
