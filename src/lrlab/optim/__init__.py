"""Optimizers over layer-wise param groups, and lr/momentum schedules stepped per optimizer step.

- `param_groups.build_optimizer`: `cfg.optimizer` (a `_partial_` torch.optim class) over the
  model's param groups (differential lrs, no-decay groups).
- `annealers`: fastai's annealing formulas (pure functions of progress).
- `schedules`: every built-in schedule as a pure function of the optimizer step, with its
  config schema.
- `scheduler.build_scheduler`: the `scheduler:` config as a torch `LRScheduler`.
"""

from lrlab.optim.param_groups import build_optimizer, group_lrs, lr_scales, param_groups
from lrlab.optim.scheduler import Schedule, build_scheduler, group_momentum, scheduler_params

__all__ = [
    "Schedule",
    "build_optimizer",
    "build_scheduler",
    "group_lrs",
    "group_momentum",
    "lr_scales",
    "param_groups",
    "scheduler_params",
]
