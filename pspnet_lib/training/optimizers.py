"""Optimisers: SGD with momentum, weight decay and a poly learning rate (optionally 10x on the head), or Adam."""

from __future__ import annotations

from collections.abc import Sequence

import keras

POLY_POWER = 0.9
OPTIMIZERS = ("sgd", "adam")
DEFAULT_LEARNING_RATES = {"sgd": 0.01, "adam": 1e-3}


def poly_schedule(initial_learning_rate: float, total_steps: int, power: float = POLY_POWER):
    """Poly decay lr * (1 - step / total_steps) ** power down to 0, as in the PSPNet paper."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1 for the poly schedule, got {total_steps}")
    return keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate, decay_steps=total_steps, end_learning_rate=0.0, power=power
    )


@keras.saving.register_keras_serializable(package="pspnet_lib")
class HeadBoostedSGD(keras.optimizers.SGD):
    """SGD whose learning rate is `head_lr_multiplier` times larger outside the (pretrained) backbone.

    A variable belongs to the backbone when its path starts with one of `backbone_prefixes`.
    """

    def __init__(
        self, head_lr_multiplier: float = 10.0, backbone_prefixes: Sequence[str] = (), **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.head_lr_multiplier = float(head_lr_multiplier)
        self.backbone_prefixes = tuple(backbone_prefixes)
        self._head_indices: set[int] = set()

    def is_head_path(self, path: str) -> bool:
        """True when the variable at `path` lies outside the backbone."""
        return not path.startswith(self.backbone_prefixes) if self.backbone_prefixes else True

    def build(self, variables) -> None:
        """Build SGD's state and remember which variables belong to the head."""
        super().build(variables)
        self._head_indices = {
            self._get_variable_index(variable) for variable in variables if self.is_head_path(variable.path)
        }

    def update_step(self, gradient, variable, learning_rate):
        """The SGD step, with the learning rate scaled for head variables."""
        if self._get_variable_index(variable) in self._head_indices:
            learning_rate = learning_rate * self.head_lr_multiplier
        super().update_step(gradient, variable, learning_rate)

    def get_config(self) -> dict:
        """SGD's config plus the multiplier and backbone prefixes."""
        return {
            **super().get_config(),
            "head_lr_multiplier": self.head_lr_multiplier,
            "backbone_prefixes": list(self.backbone_prefixes),
        }


def build_optimizer(
    name: str = "sgd",
    learning_rate: float | None = None,
    total_steps: int = 1,
    *,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    head_lr_multiplier: float = 1.0,
    backbone_prefixes: Sequence[str] = (),
) -> keras.optimizers.Optimizer:
    """SGD (momentum, weight decay, poly lr; `head_lr_multiplier` > 1 boosts the head) or Adam with the same schedule."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATES[name]
    if learning_rate <= 0:
        raise ValueError(f"learning rate must be > 0, got {learning_rate}")
    schedule = poly_schedule(learning_rate, total_steps)
    if name == "adam":
        return keras.optimizers.Adam(schedule, weight_decay=weight_decay or None)
    if head_lr_multiplier != 1.0:
        return HeadBoostedSGD(
            head_lr_multiplier, backbone_prefixes,
            learning_rate=schedule, momentum=momentum, weight_decay=weight_decay,
        )
    return keras.optimizers.SGD(schedule, momentum=momentum, weight_decay=weight_decay)
