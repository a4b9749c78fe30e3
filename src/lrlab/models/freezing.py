"""Freezing layer groups and fastai-style `fine_tune` unfreezing.

Freezing follows fastai's `freeze_to`: frozen parameters get `requires_grad=False` but stay in
the optimizer from the start (torch optimizers skip parameters whose `.grad` is None), so the
`fine_tune` unfreeze is just `requires_grad_(True)`: the optimizer state of the parameters that
were already training is kept and the one schedule of the whole run simply continues.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from torch import nn

from lrlab.errors import ConfigError
from lrlab.models.groups import layer_groups

if TYPE_CHECKING:
    from lrlab.models.factory import ModelConfig

log = logging.getLogger(__name__)

FREEZE_CHOICES = ("none", "all_but_head", "all_but_last_stage")


def num_frozen_groups(freeze: Any, n_groups: int) -> int:
    """How many leading layer groups `model.freeze` freezes (fastai's `freeze_to(n)`).

    `none` | `all_but_head` (= freeze_to(-1)) | `all_but_last_stage` (= freeze_to(-2)) | an int n:
    the first n groups (negative: all but the last -n).
    """
    if isinstance(freeze, bool) or not isinstance(freeze, (int, str)):
        raise ConfigError(
            f"model.freeze={freeze!r} is not one of {', '.join(FREEZE_CHOICES)} or an integer"
        )
    if isinstance(freeze, str):
        if freeze not in FREEZE_CHOICES:
            raise ConfigError(
                f"model.freeze={freeze!r} is not one of {', '.join(FREEZE_CHOICES)} or an integer"
            )
        n = {"none": 0, "all_but_head": -1, "all_but_last_stage": -2}[freeze]
    else:
        n = freeze
    if n == 0:
        return 0
    if n_groups < 2:
        raise ConfigError(
            f"model.freeze={freeze!r} needs a model with layer groups (a group_matcher()); "
            "this one has a single group"
        )
    frozen = n if n > 0 else n_groups + n
    if not 0 <= frozen < n_groups:
        raise ConfigError(
            f"model.freeze={freeze!r} must leave the head trainable and freeze >= 0 of the "
            f"{n_groups} layer groups"
        )
    return frozen


def _is_frozen_bn(module: nn.Module) -> bool:
    if not isinstance(module, nn.modules.batchnorm._BatchNorm):
        return False
    params = list(module.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)


def set_train_mode(model: nn.Module, frozen_bn_eval: bool = True) -> nn.Module:
    """`model.train()`, but BatchNorm layers whose parameters are frozen stay in eval mode,
    so their running statistics (e.g. the pretrained ones) are neither used per batch nor
    updated. Call it instead of `model.train()` at the start of each training epoch."""
    model.train()
    if frozen_bn_eval:
        for module in model.modules():
            if _is_frozen_bn(module):
                module.eval()
    return model


class Freezer:
    """Applies `model.freeze` and, with `fine_tune`, unfreezes everything after `freeze_epochs`.

    The state is a function of the epoch alone (`apply(epoch)`), so a resumed run freezes
    exactly as an uninterrupted one.
    """

    def __init__(
        self,
        model: nn.Module,
        freeze: Any,
        fine_tune: bool = False,
        freeze_epochs: int = 1,
        frozen_bn_eval: bool = True,
        epochs: int | None = None,
    ) -> None:
        self.model = model
        self.groups = layer_groups(model)
        self.n_frozen = num_frozen_groups(freeze, len(self.groups))
        if not isinstance(fine_tune, bool):
            raise ConfigError(f"model.fine_tune={fine_tune!r} must be true or false")
        if not isinstance(frozen_bn_eval, bool):
            raise ConfigError(f"model.frozen_bn_eval={frozen_bn_eval!r} must be true or false")
        if fine_tune:
            if self.n_frozen == 0:
                raise ConfigError(
                    f"model.fine_tune=true with model.freeze={freeze!r} has nothing to unfreeze; "
                    "set model.freeze=all_but_head (fastai's fine_tune) or all_but_last_stage"
                )
            if isinstance(freeze_epochs, bool) or not isinstance(freeze_epochs, int):
                raise ConfigError(f"model.freeze_epochs={freeze_epochs!r} must be an integer")
            if freeze_epochs < 1 or (epochs is not None and freeze_epochs >= epochs):
                raise ConfigError(
                    f"model.freeze_epochs={freeze_epochs!r} must be in [1, trainer.epochs"
                    f"{'' if epochs is None else f'={epochs}'}) so that the unfreeze happens"
                )
        self.fine_tune, self.freeze_epochs, self.frozen_bn_eval = (
            fine_tune,
            freeze_epochs,
            frozen_bn_eval,
        )
        params = dict(model.named_parameters())
        frozen_names = [n for g in self.groups[: self.n_frozen] for n in g]
        # Parameters the model itself keeps fixed stay fixed when fine_tune unfreezes.
        self._frozen = [params[n] for n in frozen_names if params[n].requires_grad]
        self._is_frozen: bool | None = None

    @classmethod
    def from_settings(
        cls,
        settings: ModelConfig,
        model: nn.Module,
        epochs: int | None = None,
        pretrained: bool | None = None,
    ) -> Freezer:
        """The freezer of `settings` (`lrlab.models.training_settings(cfg.model)`);
        `pretrained`: the model's own `pretrained` argument, if it has one."""
        freezer = cls(
            model,
            freeze=settings.freeze,
            fine_tune=settings.fine_tune,
            freeze_epochs=settings.freeze_epochs,
            frozen_bn_eval=settings.frozen_bn_eval,
            epochs=epochs,
        )
        if freezer.n_frozen and pretrained is False:
            log.warning(
                "model.freeze=%s with model.pretrained=false freezes randomly initialised layers",
                settings.freeze,
            )
        return freezer

    def frozen_at(self, epoch: int) -> bool:
        """Whether the frozen groups are frozen during (0-based) `epoch`."""
        return self.n_frozen > 0 and not (self.fine_tune and epoch >= self.freeze_epochs)

    def apply(self, epoch: int) -> bool:
        """Set `requires_grad` for (0-based) `epoch`; call before the epoch's first step.
        Returns True when this call changed the frozen state (e.g. fine_tune's unfreeze)."""
        frozen = self.frozen_at(epoch)
        if frozen == self._is_frozen:
            return False
        changed = self._is_frozen is not None
        for p in self._frozen:
            p.requires_grad_(not frozen)
            if frozen:
                p.grad = None  # the optimizer skips parameters without a gradient
        self._is_frozen = frozen
        if changed or frozen:
            log.info(
                "%s %d of %d layer groups at epoch %d",
                "froze" if frozen else "unfroze",
                self.n_frozen,
                len(self.groups),
                epoch,
            )
        return changed

    def train_mode(self) -> nn.Module:
        """`model.train()` keeping frozen BatchNorm layers in eval mode (`model.frozen_bn_eval`)."""
        return set_train_mode(self.model, self.frozen_bn_eval)
