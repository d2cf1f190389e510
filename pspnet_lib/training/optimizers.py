"""Optimisers: the paper's SGD (momentum 0.9, coupled L2 weight decay, poly lr, 10x lr on new layers) or Adam.

Weight decay comes in two kinds. Caffe and PyTorch, and so the PSPNet authors (hszhao/semseg), add
`weight_decay * w` to the gradient, which then goes through momentum ("coupled" L2): at momentum 0.9 a weight
shrinks about 10x more per step than with Keras' own `SGD(weight_decay=...)`, which subtracts
`lr * weight_decay * w` outside the momentum ("decoupled", the SGDW of Loshchilov & Hutter). "sgd" is the
paper's coupled kind; "sgdw" is Keras' decoupled one, kept for comparison.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import tensorflow as tf

POLY_POWER = 0.9
OPTIMIZERS = ("sgd", "sgdw", "adam")
DEFAULT_LEARNING_RATES = {"sgd": 0.01, "sgdw": 0.01, "adam": 1e-3}
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
# The layers a pretrained backbone does not provide (pyramid module, head, auxiliary head) learn this much faster.
NEW_LAYER_LR_MULTIPLIER = 10.0


def poly_schedule(initial_learning_rate: float, total_steps: int, power: float = POLY_POWER):
    """Poly decay lr * (1 - step / total_steps) ** power down to 0, as in the PSPNet paper."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1 for the poly schedule, got {total_steps}")
    return keras.optimizers.schedules.PolynomialDecay(
        initial_learning_rate, decay_steps=total_steps, end_learning_rate=0.0, power=power
    )


@keras.saving.register_keras_serializable(package="pspnet_lib")
class PaperSGD(keras.optimizers.SGD):
    """SGD as Caffe and PyTorch run it: coupled L2 weight decay, and `lr_multiplier` on the variables of `boosted_paths`.

    Each step a weight w with gradient g gets g' = (g + l2_weight_decay * w) * k, k = `lr_multiplier` for the
    variables whose `path` is in `boosted_paths` (the new layers) and 1 otherwise; Keras' momentum SGD then
    applies g'. Scaling the gradient by k equals a k times larger learning rate for that group (momentum is
    linear in the gradient); Keras' momentum form (m = 0.9 m - lr g'; w += m) equals PyTorch's
    (b = 0.9 b + g'; w -= lr b) exactly while lr is constant, and within the poly schedule's change of lr
    over the momentum's ~10-step memory otherwise.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum: float = MOMENTUM,
        l2_weight_decay: float = WEIGHT_DECAY,
        boosted_paths: Iterable[str] = (),
        lr_multiplier: float = 1.0,
        **kwargs,
    ) -> None:
        if kwargs.get("weight_decay"):
            raise ValueError("PaperSGD decays weights through the gradient (l2_weight_decay); use 'sgdw' for Keras' decoupled weight_decay")
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, momentum=momentum, **kwargs)
        if not l2_weight_decay >= 0:
            raise ValueError(f"l2_weight_decay must be >= 0, got {l2_weight_decay!r}")
        if not lr_multiplier > 0:
            raise ValueError(f"lr_multiplier must be > 0, got {lr_multiplier!r}")
        self.l2_weight_decay = float(l2_weight_decay)
        self.boosted_paths = frozenset(boosted_paths)
        self.lr_multiplier = float(lr_multiplier)

    def gradient_multiplier(self, variable) -> float:
        """The learning-rate multiplier of `variable`: `lr_multiplier` for a boosted (new) layer's variable, else 1."""
        return self.lr_multiplier if variable.path in self.boosted_paths else 1.0

    def apply(self, grads, trainable_variables=None):
        """Add the L2 term to each gradient and scale it by its variable's multiplier, then take Keras' SGD step."""
        if trainable_variables is None:
            raise ValueError("PaperSGD.apply needs trainable_variables (use apply_gradients(zip(grads, variables)))")
        variables = list(trainable_variables)
        # Keras divides each replica's loss by the replica count and sums the gradients: the L2 term follows suit.
        decay = self.l2_weight_decay / tf.distribute.get_strategy().num_replicas_in_sync
        decay *= self.loss_scale_factor or 1.0
        adjusted = [
            None if grad is None else (grad + decay * keras.ops.cast(var, grad.dtype)) * self.gradient_multiplier(var)
            for grad, var in zip(grads, variables, strict=True)
        ]
        return super().apply(adjusted, variables)

    def get_config(self) -> dict:
        """SGD's config plus the L2 decay, the boosted variable paths and their multiplier."""
        return {
            **super().get_config(),
            "l2_weight_decay": self.l2_weight_decay,
            "boosted_paths": sorted(self.boosted_paths),
            "lr_multiplier": self.lr_multiplier,
        }


def build_optimizer(
    name: str = "sgd",
    learning_rate: float | None = None,
    total_steps: int | None = 1,
    *,
    momentum: float = MOMENTUM,
    weight_decay: float = WEIGHT_DECAY,
    new_layer_variables: Iterable = (),
    head_lr_multiplier: float = 1.0,
) -> keras.optimizers.Optimizer:
    """The paper's SGD ("sgd", coupled L2), Keras' SGDW ("sgdw", decoupled) or Adam, all on the poly schedule.

    `total_steps` None: a constant learning rate instead, for a caller that sets it (`callbacks.TimeBudget`).
    With "sgd", the variables in `new_layer_variables` (see `models.new_layer_variables`) learn
    `head_lr_multiplier` times faster.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    if learning_rate is None:
        learning_rate = DEFAULT_LEARNING_RATES[name]
    if not learning_rate > 0:
        raise ValueError(f"learning rate must be > 0, got {learning_rate}")
    if head_lr_multiplier != 1.0 and name != "sgd":
        raise ValueError(
            f"head_lr_multiplier (the new layers' learning-rate multiplier) applies to optimizer 'sgd' only, got {name!r}"
        )
    schedule = learning_rate if total_steps is None else poly_schedule(learning_rate, total_steps)
    if name == "adam":
        return keras.optimizers.Adam(schedule, weight_decay=weight_decay or None)
    if name == "sgdw":
        return keras.optimizers.SGD(schedule, momentum=momentum, weight_decay=weight_decay or None)
    return PaperSGD(
        schedule, momentum, weight_decay, [variable.path for variable in new_layer_variables], head_lr_multiplier
    )
