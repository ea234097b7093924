"""The model zoo: one definition per model, built by name.

All models take the input of ``edge.contract`` (float32 [0,1], 28x28x1,
white on black, MNIST-centred) and end in a 10-way softmax.

* ``mlp``          - the ANN of the "handwritten using ann" article.
* ``cnn_baseline`` - the "simple CNN" of "Handwritten Digit Recognition MNIST Dataset".
* ``cnn_large``    - that article's "larger CNN".
* ``edge``         - ours: a compact, int8-friendly CNN for the Pi (default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
from keras import layers

from edge.contract import INPUT_SHAPE


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: what the seed articles used, or our own choice for ``edge``."""

    epochs: int
    batch_size: int
    lr: float = 1e-3
    augment: bool = False
    schedule: str = "constant"  # "constant" | "onecycle"
    early_stopping: bool = False
    label_smoothing: float = 0.0
    reported: dict = field(default_factory=dict)  # the seed article's own figures


def _inputs():
    return keras.Input(shape=INPUT_SHAPE, name="image")


def mlp() -> keras.Model:
    x = inp = _inputs()
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(32, activation="relu")(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="mlp")


def cnn_baseline() -> keras.Model:
    x = inp = _inputs()
    x = layers.Conv2D(32, 5, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="cnn_baseline")


def cnn_large() -> keras.Model:
    x = inp = _inputs()
    x = layers.Conv2D(30, 5, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(15, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, activation="relu")(x)
    x = layers.Dense(50, activation="relu")(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="cnn_large")


# 0.9 (PyTorch's default) rather than Keras' 0.99: the moving statistics settle
# within a hundred steps, so even a short --fast run evaluates sensibly.
BN_MOMENTUM = 0.9


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1):
    """Conv (no bias) -> BatchNorm -> ReLU6: folds into one int8 conv with a fused clamp."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    return layers.ReLU(6.0)(x)


def _sep_bn(x, filters: int):
    """Depthwise 3x3 + pointwise 1x1, each with a foldable BatchNorm and ReLU6."""
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.ReLU(6.0)(x)
    return _conv_bn(x, filters, 1)


def edge() -> keras.Model:
    """Compact CNN for int8 edge inference (~59k parameters, ~75 KB as full-int8 TFLite).

    Only ops every int8 kernel library has: Conv2D, DepthwiseConv2D, BatchNorm
    (folded into the convs by the converter), ReLU6, max pooling, one Dense.
    A 5x5 stride-2 stem goes straight to 14x14 (on a CPU the full-resolution
    activations, not the multiply-adds, are what training time is made of);
    then a full convolution while channels are few, and depthwise-separable
    ones once they grow. The head keeps a coarse 3x3 layout (where the strokes
    are matters for digits) instead of averaging it away.
    """
    x = inp = _inputs()
    x = _conv_bn(x, 32, 5, strides=2)  # 14x14
    x = _conv_bn(x, 64)
    x = layers.MaxPooling2D(2)(x)  # 7x7
    x = _sep_bn(x, 128)
    x = _sep_bn(x, 128)
    x = layers.MaxPooling2D(2)(x)  # 3x3
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3)(x)
    out = layers.Dense(10, activation="softmax", name="probs")(x)
    return keras.Model(inp, out, name="edge")


BUILDERS = {"mlp": mlp, "cnn_baseline": cnn_baseline, "cnn_large": cnn_large, "edge": edge}

RECIPES = {
    "mlp": Recipe(epochs=10, batch_size=32, reported={"test_accuracy": 0.9736, "source": "handwritten using ann"}),
    "cnn_baseline": Recipe(
        epochs=10,
        batch_size=200,
        reported={"test_accuracy": 0.992, "test_loss": 0.0241, "source": "Handwritten Digit Recognition MNIST Dataset"},
    ),
    "cnn_large": Recipe(epochs=10, batch_size=200, reported={"source": "Handwritten Digit Recognition MNIST Dataset"}),
    "edge": Recipe(
        epochs=22,
        batch_size=128,
        lr=3e-3,
        augment=True,
        schedule="onecycle",
        early_stopping=True,
        label_smoothing=0.05,
    ),
}


def build(name: str) -> keras.Model:
    """Build a fresh, uncompiled model by name."""
    try:
        return BUILDERS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(BUILDERS)}") from None
