"""The model zoo builds by name, with the architectures the seed articles describe."""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")

from train import models  # noqa: E402


@pytest.mark.parametrize("name", sorted(models.BUILDERS))
def test_every_model_builds_with_the_contract_io(name):
    m = models.build(name)
    assert tuple(m.input_shape) == (None, 28, 28, 1)
    assert tuple(m.output_shape) == (None, 10)
    assert name in models.RECIPES


def test_mlp_has_the_articles_parameter_count():
    assert models.build("mlp").count_params() == 104_938


def test_seed_cnn_shapes():
    kinds = [type(layer).__name__ for layer in models.build("cnn_baseline").layers]
    assert kinds == ["InputLayer", "Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dense"]
    large = [layer for layer in models.build("cnn_large").layers if type(layer).__name__ in ("Conv2D", "Dense")]
    assert [getattr(layer, "filters", None) or layer.units for layer in large] == [30, 15, 128, 50, 10]
    assert models.RECIPES["cnn_baseline"].batch_size == 200 and models.RECIPES["cnn_baseline"].epochs == 10


def test_edge_model_is_small_and_int8_friendly():
    m = models.build("edge")
    allowed = {"InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "MaxPooling2D",
               "GlobalAveragePooling2D", "Flatten", "Dropout", "Dense"}
    assert {type(layer).__name__ for layer in m.layers} <= allowed
    # ~1 byte per weight as full int8 plus a few KB of graph: stay well inside 100 KB.
    assert m.count_params() < 80_000


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="mlp, cnn_baseline, cnn_large, edge"):
        models.build("resnet")
