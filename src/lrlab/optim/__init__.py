"""Optimizers over layer-wise param groups, and schedules of any param-group key stepped per
optimizer step.

- `optimizer`: the `optimizer:` node: its arguments checked against the class, its lr scaled
  with the batch size, and `build_optimizer` over the model's param groups.
- `schedules`: what a schedule is (`Schedule`: built from `_target_`, a function of the
  optimizer step over a `Plan`) and every built-in one.
- `scheduler.build_scheduler`: the `scheduler:` config applied to the optimizer (`Scheduler`),
  or a torch / timm scheduler by `_target_` (`TorchScheduler`).
- `switch`: `optimizer_switch:`, a second optimizer with its own schedule.
"""

from lrlab.optim.optimizer import build_optimizer, group_lrs, lr_scales, param_groups
from lrlab.optim.scheduler import Scheduler, build_scheduler, check_scheduler, group_momentum

__all__ = [
    "Scheduler",
    "build_optimizer",
    "build_scheduler",
    "check_scheduler",
    "group_lrs",
    "group_momentum",
    "lr_scales",
    "param_groups",
]
