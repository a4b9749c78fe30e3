"""Built-in callbacks (the protocol is `lrlab.engine.callbacks.Callback`).

Always on, configured by `trainer.*` and `model.*` keys: `Freezing`, `ProgressBar`,
`Divergence`, `RunRecords`, `Checkpointing`; with `resizing:` and `optimizer_switch:` configs,
`Resizing` and `OptimizerSwitch`. Chosen in the `callbacks` config group:
`EarlyStopping`, `BestCheckpoint`, `EMA`, and any of your own (`_target_: my.module.MyCallback`).
"""

from lrlab.callbacks.checkpoints import BestCheckpoint, Checkpointing
from lrlab.callbacks.ema import EMA
from lrlab.callbacks.progress import ProgressBar
from lrlab.callbacks.records import RunRecords
from lrlab.callbacks.run_plan import Freezing, OptimizerSwitch, Resizing
from lrlab.callbacks.stopping import Divergence, EarlyStopping
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
