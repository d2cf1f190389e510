"""How big a model is: its parameters, and the multiply-adds of one forward pass."""

from __future__ import annotations

import math

import keras
import tensorflow as tf


def count_parameters(model: keras.Model, trainable_only: bool = False) -> int:
    """Number of scalar weights in `model` (all of them, or only the trainable ones)."""
    weights = model.trainable_weights if trainable_only else model.weights
    return int(sum(math.prod(w.shape) for w in weights))


def count_flops(model: keras.Model, input_shape: tuple) -> int:
    """Multiply-adds of one forward pass on one (H, W, C) image: convolutions and matrix products only.

    Counted on the traced TensorFlow graph (Conv2D, DepthwiseConv2dNative, MatMul, BatchMatMulV2 ops, from
    their static shapes), so layers nested inside custom layers count too. FLOPs in the 2-per-multiply-add
    sense are twice this; BN, activations, pooling and resizing are not counted.
    """
    if len(input_shape) != 3 or any(size is None or size < 1 for size in input_shape):
        raise ValueError(f"input_shape must be a fully known (height, width, channels), got {input_shape!r}")
    spec = tf.TensorSpec((1, *input_shape), tf.float32)
    graph = tf.function(lambda images: model(images, training=False)).get_concrete_function(spec).graph
    return int(sum(_op_multiply_adds(op) for op in graph.get_operations()))


def _op_multiply_adds(op: tf.Operation) -> int:
    """Multiply-adds of one graph op (0 for ops other than convolutions and matrix products)."""
    if op.type not in ("Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2"):
        return 0
    outputs = math.prod(op.outputs[0].shape.as_list())
    if op.type == "Conv2D":  # kernel (kh, kw, in/groups, out): each output sums kh*kw*in/groups products
        return outputs * math.prod(op.inputs[1].shape.as_list()[:3])
    if op.type == "DepthwiseConv2dNative":  # kernel (kh, kw, in, multiplier): kh*kw products per output
        return outputs * math.prod(op.inputs[1].shape.as_list()[:2])
    transposed = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
    left = op.inputs[0].shape.as_list()
    return outputs * (left[-2] if transposed else left[-1])
