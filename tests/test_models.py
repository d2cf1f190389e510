"""pspnet_lib.models: structure, sizes, saving, weight transfer, gradients, precision and counters."""

from __future__ import annotations

import math
import socket

import keras
import numpy as np
import pytest
import tensorflow as tf

from pspnet_lib.layers import (
    DilatedResidualBlock,
    PyramidPoolingModule,
    empirical_receptive_field,
    receptive_field,
)
from pspnet_lib.models import (
    IMAGENET_WEIGHTS_FILE,
    SPECS,
    NetworkSpec,
    backbone_channels,
    batch_norm_layers,
    build,
    build_backbone,
    build_pspnet,
    count_flops,
    count_parameters,
    imagenet_weights_available,
    receptive_field_of,
    stage_strides_and_dilations,
    transfer_resnet50_weights,
)

NUM_CLASSES = 5
TINY = {"num_classes": NUM_CLASSES, "width": 0.25}  # "pspnet_small" / "fcn_small" with a few thousand parameters
# What the paper (and hszhao/semseg) do, stage by stage (conv2..conv5): (stride, dilation).
EXPECTED_SCHEDULES = {
    8: [(1, 1), (2, 1), (1, 2), (1, 4)],
    16: [(1, 1), (2, 1), (2, 1), (1, 2)],
    32: [(1, 1), (2, 1), (2, 1), (2, 1)],
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)


@pytest.fixture
def mixed_precision():
    """Run under the mixed_float16 policy, restoring the previous policy afterwards."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.fixture(scope="module")
def resnet50_pspnet() -> keras.Model:
    return build("pspnet50")


@pytest.fixture(scope="module")
def random_resnet50() -> keras.Model:
    """Stand-in for the ImageNet model: same architecture, random weights, no download."""
    keras.utils.set_random_seed(1)
    return keras.applications.ResNet50(weights=None, include_top=False)


def images(batch: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).random((batch, height, width, 3), dtype=np.float32)


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested backbone sub-model of a segmentation model (a backbone built alone is itself)."""
    names = {layer.name for layer in model.layers}
    return model.get_layer("backbone") if "backbone" in names else model


def blocks_of(model: keras.Model, stage: int) -> list[DilatedResidualBlock]:
    return [layer for layer in backbone_of(model).layers if layer.name.startswith(f"conv{stage}_block")]


def three_by_three_dilations_and_strides(block: DilatedResidualBlock) -> tuple[set, tuple]:
    """Dilations of the block's 3x3 convolutions and its largest convolution stride, read from layer configs."""
    configs = [layer.get_config() for layer in block.sublayers if isinstance(layer, keras.layers.Conv2D)]
    dilations = {config["dilation_rate"] for config in configs if config["kernel_size"] == (3, 3)}
    return dilations, max(config["strides"] for config in configs)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_stage_schedule_follows_the_paper(output_stride) -> None:
    assert stage_strides_and_dilations(output_stride) == EXPECTED_SCHEDULES[output_stride]


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_small_backbone_dilations_and_feature_size(output_stride) -> None:
    backbone = build_backbone("small", output_stride=output_stride, width_multiplier=0.25)
    for stage, (stride, dilation) in zip(range(2, 6), EXPECTED_SCHEDULES[output_stride], strict=True):
        first, *rest = blocks_of(backbone, stage)
        assert three_by_three_dilations_and_strides(first) == ({(dilation, dilation)}, (stride, stride))
        for block in rest:
            assert three_by_three_dilations_and_strides(block) == ({(dilation, dilation)}, (1, 1))
    aux_features, features = backbone.predict(images(1, 97, 161), verbose=0)
    aux_stride = min(output_stride, 16)
    assert features.shape[1:3] == (math.ceil(97 / output_stride), math.ceil(161 / output_stride))
    assert aux_features.shape[1:3] == (math.ceil(97 / aux_stride), math.ceil(161 / aux_stride))


@pytest.mark.slow
def test_resnet50_pspnet_dilations_size_and_outputs_at_an_odd_size(resnet50_pspnet) -> None:
    for stage, (stride, dilation), blocks in zip(
        range(2, 6), EXPECTED_SCHEDULES[8], (3, 4, 6, 3), strict=True
    ):
        stage_blocks = blocks_of(resnet50_pspnet, stage)
        assert len(stage_blocks) == blocks
        assert three_by_three_dilations_and_strides(stage_blocks[0])[1] == (stride, stride)
        assert all(three_by_three_dilations_and_strides(b)[0] == {(dilation, dilation)} for b in stage_blocks)
    backbone = backbone_of(resnet50_pspnet)
    features = keras.Model(backbone.input, backbone.get_layer("conv5_block3").output)
    assert features.predict(images(1, 97, 161), verbose=0).shape == (
        1,
        13,
        21,
        2048,
    )  # ceil(97/8), ceil(161/8)
    logits, aux_logits = resnet50_pspnet.predict(images(1, 97, 161), verbose=0)
    assert logits.shape == aux_logits.shape == (1, 97, 161, 19)


@pytest.mark.slow
def test_resnet50_pspnet_parameter_count(resnet50_pspnet, random_resnet50) -> None:
    # Known construction: ResNet-50 body + PPM (4 x 1x1 2048->512, BN) + head (3x3 4096->512, BN, 1x1 -> 19)
    # + aux head (3x3 1024->256, BN, 1x1 -> 19); a BN layer holds 4 numbers per channel.
    ppm = 4 * (2048 * 512 + 4 * 512)
    head = 9 * 4096 * 512 + 4 * 512 + 512 * 19 + 19
    aux_head = 9 * 1024 * 256 + 4 * 256 + 256 * 19 + 19
    total = count_parameters(resnet50_pspnet)
    assert total == random_resnet50.count_params() + ppm + head + aux_head
    assert 46e6 < total < 50e6  # PSPNet50 with an auxiliary head, as published (~46-49 M)


@pytest.mark.slow
def test_weight_transfer_copies_every_resnet50_layer(resnet50_pspnet, random_resnet50) -> None:
    copied = transfer_resnet50_weights(random_resnet50, resnet50_pspnet)
    weighted = [layer.name for layer in random_resnet50.layers if layer.weights]
    assert copied == weighted and len(weighted) == 1 + 1 + 16 * 6 + 4 * 2  # stem, 16 blocks, 4 projections
    targets = {w.path.split("/")[-2] + "/" + w.name: w for w in resnet50_pspnet.weights}
    for layer in random_resnet50.layers:
        for weight in layer.weights:
            np.testing.assert_array_equal(targets[f"{layer.name}/{weight.name}"].numpy(), weight.numpy())


@pytest.mark.slow
def test_undilated_backbone_with_transferred_weights_computes_resnet50(random_resnet50) -> None:
    backbone = build_backbone("resnet50", output_stride=32)
    transfer_resnet50_weights(random_resnet50, backbone)
    batch = images(1, 67, 99)
    expected = random_resnet50.predict(keras.applications.resnet50.preprocess_input(batch * 255.0), verbose=0)
    np.testing.assert_allclose(backbone.predict(batch, verbose=0)[1], expected, rtol=1e-3, atol=1e-3)


def test_imagenet_weights_offline_give_a_clear_error(monkeypatch) -> None:
    from keras.src.utils import file_utils

    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(RuntimeError, match="weights=None"):
        build("pspnet50", weights="imagenet")


@pytest.mark.slow
def test_output_size_equals_input_size_for_any_size_from_32() -> None:
    model = build("pspnet_small", **TINY)  # one model: later sizes run with relaxed (unknown) shapes
    for size in [(32, 32), (33, 47), (97, 161), (256, 256), (256, 512), (713, 713)]:
        logits, aux_logits = model.predict(images(1, *size), verbose=0)
        assert logits.shape == aux_logits.shape == (1, *size, NUM_CLASSES)


@pytest.mark.parametrize("network", ["pspnet_small", "fcn_small"])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_static_input_shape_output_matches(network, output_stride) -> None:
    model = build(network, input_size=(45, 77), output_stride=output_stride, aux_head=False, **TINY)
    assert model.output_shape == (None, 45, 77, NUM_CLASSES)
    assert model.predict(images(2, 45, 77), verbose=0).shape == (2, 45, 77, NUM_CLASSES)


def test_outputs_are_named_main_first() -> None:
    model = build("pspnet_small", **TINY)
    assert model.output_names == ["logits", "aux_logits"]
    assert build("pspnet_small", aux_head=False, **TINY).output_names == ["logits"]


def test_fcn_is_pspnet_without_the_pyramid_pooling() -> None:
    pspnet, fcn = build("pspnet_small", **TINY), build("fcn_small", **TINY)
    assert any(isinstance(layer, PyramidPoolingModule) for layer in pspnet.layers)
    assert not any(isinstance(layer, PyramidPoolingModule) for layer in fcn.layers)
    assert {layer.name for layer in pspnet.layers} - {layer.name for layer in fcn.layers} == {
        "pyramid_pooling"
    }


def test_small_pspnet_has_about_a_million_parameters() -> None:
    assert 0.8e6 < count_parameters(build("pspnet_small")) < 1.3e6


@pytest.mark.filterwarnings(
    "ignore:__array__ implementation:DeprecationWarning"
)  # raised inside Keras' saving
def test_keras_file_round_trip_gives_identical_predictions(tmp_path) -> None:
    model = build("pspnet_small", pooling="max", **TINY)
    batch = images(2, 41, 57)
    expected = model.predict(batch, verbose=0)
    model.save(tmp_path / "pspnet.keras")
    loaded = keras.saving.load_model(tmp_path / "pspnet.keras")
    for before, after in zip(expected, loaded.predict(batch, verbose=0), strict=True):
        np.testing.assert_array_equal(after, before)


def test_the_model_records_its_spec_and_a_saved_file_says_what_it_is(tmp_path) -> None:
    from pspnet_lib import models

    for spec in (
        models.NetworkSpec("pspnet", "small", bins=(1, 3), pooling="max", aux_head=False, width=0.25, num_classes=3),
        models.get_spec("fcn_small", width=0.25, dilate=False),
        models.NetworkSpec("article", input_size=32),
    ):
        model = models.build(spec)
        model.save(tmp_path / "model.keras")
        loaded = keras.saving.load_model(tmp_path / "model.keras")
        assert models.network_spec(loaded) == spec
        assert models.is_color_model(loaded) == (spec.network == "article")  # a 3-class PSPNet is not one
        assert models.NetworkSpec.from_dict(spec.as_dict()) == spec
    assert not models.is_color_model(keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(3, 1)]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"network": "unet"}, "network must be one of"),
        ({"bins": (0,)}, "bins"),
        ({"pooling": "median"}, "pooling"),
        ({"aux_head": "yes"}, "aux_head must be True or False"),
        ({"reduction_filters": 0}, "reduction_filters"),
        ({"input_size": 8}, "input_shape"),
        ({"network": "article"}, "input_shape must be a fixed"),
        ({"flat_output": True}, "flat_output applies to network='article' only"),
    ],
)
def test_a_spec_that_cannot_be_built_is_refused_naming_the_setting(changes, message) -> None:
    from pspnet_lib import models

    with pytest.raises(ValueError, match=message):
        models.NetworkSpec(**{"backbone": "small", **changes})


LOAD_IN_A_FRESH_PROCESS = """
import json, sys
if sys.argv[1] == "pspnet_lib first":
    import pspnet_lib
    assert "tensorflow" not in sys.modules, "importing pspnet_lib loaded TensorFlow"
    import keras
else:
    import keras
    import pspnet_lib
import numpy as np
found = {}
for path in sys.argv[2:]:
    model = keras.saving.load_model(path)
    size = model.inputs[0].shape[1] or 64
    images = np.random.default_rng(0).random((2, size, size, 3), np.float32)
    labels = np.zeros((2, size, size), np.int32)
    targets = labels if len(model.outputs) == 1 else {name: labels for name in model.output_names}
    scores = model.evaluate(images, targets, verbose=0, return_dict=True) if model.compiled else {}
    objects = [model, *model._flatten_layers(), getattr(model, "optimizer", None), *keras.tree.flatten(model.loss or [])]
    objects += [metric for holder in model.metrics for metric in getattr(holder, "metrics", [holder])]
    found[path] = {
        "classes": sorted({type(item).__name__ for item in objects if type(item).__module__.startswith("pspnet_lib")}),
        "scores": sorted(scores),
        "image_size": getattr(model, "recorded_image_size", None),
        "spec": model.spec.as_dict() if getattr(model, "spec", None) else None,
    }
print(json.dumps(found))
"""


def _save_every_class_the_library_saves(folder) -> dict:
    """Saved .keras files that between them hold every class pspnet_lib registers with Keras, compiled for training."""
    from pspnet_lib import keras_registry, layers, models, training

    files = {}
    pspnet = models.build(models.NetworkSpec(backbone="small", width=0.25, num_classes=4), image_size=64)
    optimizer = training.build_optimizer(
        "sgd", total_steps=10, new_layer_variables=models.new_layer_variables(pspnet), head_lr_multiplier=10.0
    )
    training.compile_for_training(pspnet, optimizer, jaccard_weight=0.5)  # CrossEntropyJaccard, PixelAccuracy
    article = models.build(models.NetworkSpec("article", input_size=32))
    training.compile_for_training(article, training.build_optimizer("adam", 1e-3))  # PaletteColorMSE
    image = keras.Input((32, 32, 3))
    caffe = keras.Model(image, keras.layers.Conv2D(2, 1)(layers.CaffeImageNetPreprocessing()(image)))
    for name, model in {"pspnet": pspnet, "article": article, "caffe": caffe}.items():
        files[name] = folder / f"{name}.keras"
        model.save(files[name])
    registered = set(keras_registry.custom_objects()) - {"pspnet_lib>PaletteColourMSE"}  # an old spelling's alias
    return files, {name.removeprefix("pspnet_lib>") for name in registered}, pspnet


@pytest.mark.slow
@pytest.mark.parametrize("order", ["pspnet_lib first", "keras first"])
def test_every_class_the_library_saves_loads_in_a_fresh_process_once_pspnet_lib_is_imported(tmp_path, order) -> None:
    import json
    import subprocess
    import sys

    files, registered, pspnet = _save_every_class_the_library_saves(tmp_path)
    assert {"SegmentationModel", "PixelAccuracy", "PaperSGD", "CrossEntropyJaccard", "PaletteColorMSE"} <= registered
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, order, *map(str, files.values())], capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {name: json.loads(result.stdout.splitlines()[-1])[str(path)] for name, path in files.items()}
    assert set().union(*(found["classes"] for found in loaded.values())) == registered
    assert {"SegmentationModel", "PaperSGD", "CrossEntropyJaccard", "PixelAccuracy"} <= set(loaded["pspnet"]["classes"])
    assert "pixel_accuracy" in " ".join(loaded["pspnet"]["scores"])  # the reloaded metric still scores
    assert loaded["pspnet"]["spec"] == pspnet.spec.as_dict() and loaded["pspnet"]["image_size"] == 64
    assert "PaletteColorMSE" in loaded["article"]["classes"] and loaded["article"]["image_size"] == 32


def test_a_saved_model_records_the_image_size_it_is_meant_for(tmp_path) -> None:
    from pspnet_lib import models

    spec = models.NetworkSpec(backbone="small", width=0.25, aux_head=False)
    for size, expected in ((96, 96), ((64, 128), (64, 128)), ([64, 64], 64), (None, None)):
        models.build(spec, image_size=size).save(tmp_path / "model.keras")
        assert models.image_size_of(keras.saving.load_model(tmp_path / "model.keras")) == expected
    assert models.image_size_of(models.build(models.NetworkSpec("article", input_size=(32, 64)))) == (32, 64)
    with pytest.raises(ValueError, match="image_size must be a side or"):
        models.build(spec, image_size=8)
    with pytest.raises(ValueError, match="differs from the fixed spec.input_size"):
        models.build(models.NetworkSpec("article", input_size=32), image_size=64)


@pytest.mark.parametrize(
    "build",
    [
        lambda: build("pspnet_small", **TINY),
        lambda: build("fcn_small", **TINY),
        lambda: build("article", input_size=32),
    ],
    ids=["pspnet", "fcn", "article"],
)
def test_a_gradient_reaches_every_trainable_weight(build) -> None:
    model = build()
    batch = tf.constant(images(2, 32, 32))
    with tf.GradientTape() as tape:
        outputs = tf.nest.flatten(model(batch, training=True))
        loss = sum(tf.reduce_sum(o * tf.random.normal(o.shape)) for o in outputs)
    gradients = tape.gradient(loss, model.trainable_weights)
    for weight, gradient in zip(model.trainable_weights, gradients, strict=True):
        assert gradient is not None, weight.path
        assert np.any(gradient.numpy() != 0), weight.path


@pytest.mark.parametrize("network", ["pspnet_small", "fcn_small"])
def test_logits_are_float32_under_mixed_precision(mixed_precision, network) -> None:
    model = build(network, **TINY)
    assert model.get_layer("head_conv").compute_dtype == "float16"
    logits, aux_logits = model(images(1, 40, 48))
    assert logits.dtype == aux_logits.dtype == "float32"


def test_article_model_is_built_as_described() -> None:
    model = build("article")
    assert model.output_shape == (None, 256 * 256 * 3)
    assert model.get_layer("article_block3").output.shape == (None, 256, 256, 256)
    assert model.get_layer("pyramid_concat").output.shape == (None, 256, 256, 512)
    for window in (2, 4, 8):  # pool SIZES: windows of 2, 4, 8 pixels, not 2, 4, 8 bins
        assert model.get_layer(f"pool_{window}x{window}").output.shape == (
            None,
            256 // window,
            256 // window,
            256,
        )
    rgb = build("article", input_size=64, flat_output=False).predict(images(1, 64, 64), verbose=0)
    assert rgb.shape == (1, 64, 64, 3) and rgb.min() > 0 and rgb.max() < 1


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"backbone": "vgg16"}, "backbone"),
        ({"bins": ()}, "bins"),
        ({"bins": (1, 0)}, "bins"),
        ({"bins": (2, -3)}, "bins"),
        ({"output_stride": 4}, "output_stride"),
        ({"num_classes": 1}, "num_classes"),
        ({"input_shape": (31, 64, 3)}, "input_shape"),
        ({"input_shape": (64, 64, 1)}, "input_shape"),
        ({"weights": "imagenet", "backbone": "small"}, "weights"),
        ({"weights": "cityscapes"}, "weights"),
        ({"width_multiplier": 0.5}, "width_multiplier"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_arguments_give_a_clear_value_error(kwargs, argument) -> None:
    arguments = {"num_classes": NUM_CLASSES, **kwargs}
    with pytest.raises(ValueError, match=argument):
        build_pspnet(**arguments)


def test_the_named_specs_are_the_papers_networks_the_classroom_ones_and_the_articles() -> None:
    paper = {"backbone": "resnet50", "bins": (1, 2, 3, 6), "pooling": "avg", "aux_head": True, "output_stride": 8,
             "dilate": True, "reduction_filters": None, "num_classes": 19, "input_size": None}
    assert sorted(SPECS) == ["article", "fcn50", "fcn_small", "pspnet50", "pspnet_small"]
    for name, network, backbone in (("pspnet50", "pspnet", "resnet50"), ("pspnet_small", "pspnet", "small"),
                                    ("fcn50", "fcn", "resnet50"), ("fcn_small", "fcn", "small")):
        assert SPECS[name].as_dict() == {**SPECS[name].as_dict(), **paper, "bins": [1, 2, 3, 6],
                                         "network": network, "backbone": backbone}
    article = SPECS["article"]
    assert (article.network, article.input_size, article.flat_output) == ("article", 256, True)


def test_build_applies_overrides_to_a_named_spec_and_the_model_records_the_result() -> None:
    from pspnet_lib import models

    model = build("pspnet_small", bins=[1, 2, 4], aux_head=False, **TINY)
    expected = NetworkSpec("pspnet", "small", bins=(1, 2, 4), aux_head=False, num_classes=NUM_CLASSES, width=0.25)
    assert model.spec == models.get_spec("pspnet_small", bins=(1, 2, 4), aux_head=False, **TINY) == expected
    assert model.get_layer("pyramid_pooling").get_config()["bins"] == [1, 2, 4] and model.output_names == ["logits"]
    assert build(expected).spec == expected and models.get_spec(expected) is expected
    assert SPECS["pspnet_small"].bins == (1, 2, 3, 6)  # the named spec itself is unchanged


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build("pspnet"), r"unknown network 'pspnet': the named specs are \['article', 'fcn50'"),
        (lambda: build("pspnet_small", width_multiplier=0.5), r"unknown network spec settings \['width_multiplier'\]: "
                                                               r"the settings are \['network', 'backbone'"),
        (lambda: build(NetworkSpec(), bns=(1,)), r"unknown network spec settings \['bns'\]"),
        (lambda: build({"network": "pspnet"}), r"spec must be one of \['article'.* or a models.NetworkSpec, got dict"),
        (lambda: build("pspnet_small", bins=(0, 1)), "bins"),
        (lambda: build("fcn50", width=0.5), "width_multiplier applies to backbone='small' only"),
        (lambda: build("article", weights="imagenet"), "the article model has no pretrained weights"),
    ],
    ids=["name", "setting", "setting-of-a-spec", "not-a-spec", "bad-bins", "bad-width", "article-weights"],
)
def test_an_unknown_name_or_setting_is_one_clear_value_error(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_build_pspnet_keywords_are_the_spec_fields_of_pspnet50() -> None:
    import inspect

    # A4 reads the defaults of build_pspnet's keywords (its ablation factors): they are the paper's spec.
    renamed = {"width_multiplier": "width"}
    for parameter in inspect.signature(build_pspnet).parameters.values():
        field = renamed.get(parameter.name, parameter.name)
        if hasattr(SPECS["pspnet50"], field) and field != "num_classes":
            assert parameter.default == getattr(SPECS["pspnet50"], field), parameter.name
    settings = {"bins": (1, 3), "output_stride": 16, "aux_head": False, "dropout": 0.3, "pooling": "max",
                "reduction_filters": 7, "batch_norm_momentum": 0.8, "synchronized_batch_norm": True, "dilate": False}
    model = build_pspnet(NUM_CLASSES, backbone="small", input_shape=(64, 96, 3), width_multiplier=0.25, **settings)
    expected = NetworkSpec("pspnet", "small", width=0.25, num_classes=NUM_CLASSES, input_size=(64, 96), **settings)
    assert model.spec == expected
    assert model.name == "pspnet"
    assert build_pspnet(19, backbone="small").spec == SPECS["pspnet_small"]


def test_article_base_features_see_only_13_pixels() -> None:
    model = build("article", input_size=48)
    base = keras.Model(model.input, model.get_layer("article_block3").output)
    # Three blocks of 1x1, 3x3 at rate 2, 1x1 convolutions, all stride 1.
    expected = receptive_field((1, 3, 1) * 3, (1,) * 9, (1, 2, 1) * 3)
    assert expected == 13 and empirical_receptive_field(base) == (expected, expected)


def test_article_model_rejects_sizes_its_fixed_upsampling_cannot_take() -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        build("article", input_size=(250, 256))


def test_count_flops_matches_a_hand_count() -> None:
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(8, 3, padding="same", dilation_rate=2),
            keras.layers.DepthwiseConv2D(3, strides=2, padding="same"),
            keras.layers.Conv2D(4, 1),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )
    expected = 16 * 16 * 8 * (3 * 3 * 3) + 8 * 8 * 8 * (3 * 3) + 8 * 8 * 4 * 8 + 5 * (8 * 8 * 4)
    assert count_flops(model, (16, 16, 3)) == expected


def test_count_flops_includes_layers_nested_in_the_pyramid_pooling() -> None:
    pspnet = build("pspnet_small", aux_head=False, **TINY)
    fcn = build("fcn_small", aux_head=False, **TINY)
    channels = backbone_of(pspnet).get_layer("conv5_block1").output.shape[-1]
    head_filters = pspnet.get_layer("head_conv").filters
    cells = math.ceil(64 / 8) ** 2
    # The PPM's 1x1 convolutions on 1, 4, 9 and 36 cells, and the head's 3x3 conv reading C more channels.
    extra = (1 + 4 + 9 + 36) * channels * (channels // 4) + cells * 9 * channels * head_filters
    assert count_flops(pspnet, (64, 64, 3)) - count_flops(fcn, (64, 64, 3)) == extra


def test_count_flops_needs_a_known_input_shape() -> None:
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(build("fcn_small", **TINY), (None, 64, 3))


def test_count_parameters_splits_trainable_weights() -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    assert count_parameters(model) == 4 * 3 + 3 + 4 * 3
    assert count_parameters(model, trainable_only=True) == 4 * 3 + 3 + 2 * 3


def moving_mean_count(model: keras.Model) -> int:
    """Number of BatchNormalization layers, counted independently: one moving_mean variable each."""
    return sum(1 for weight in model.weights if weight.path.endswith("moving_mean"))


@pytest.mark.parametrize("network", ["pspnet_small", "fcn_small"])
def test_batch_norm_settings_reach_every_batch_normalization(network) -> None:
    model = build(network, batch_norm_momentum=0.8, synchronized_batch_norm=True, **TINY)
    norms = batch_norm_layers(model)
    assert len(norms) == moving_mean_count(model) > 10
    assert all(norm.synchronized and norm.momentum == pytest.approx(0.8) for norm in norms)


def test_article_model_batch_norms_can_be_synchronized() -> None:
    model = build("article", input_size=32, batch_norm_momentum=0.8, synchronized_batch_norm=True)
    norms = batch_norm_layers(model)
    assert len(norms) == moving_mean_count(model) >= 6  # two per residual block and its projection
    assert all(norm.synchronized and norm.momentum == pytest.approx(0.8) for norm in norms)


@pytest.mark.parametrize(
    "build",
    [
        lambda: build("pspnet_small", **TINY),
        lambda: build("fcn_small", **TINY),
        lambda: build_backbone("small", width_multiplier=0.25),
        lambda: build("article", input_size=32),
    ],
    ids=["pspnet", "fcn", "backbone", "article"],
)
def test_batch_norm_defaults_to_pytorch_momentum_unsynchronized(build) -> None:
    norms = batch_norm_layers(build())
    assert norms and all(norm.momentum == pytest.approx(0.9) and not norm.synchronized for norm in norms)


def test_batch_norm_momentum_sets_the_moving_average_update() -> None:
    model = build("fcn_small", aux_head=False, batch_norm_momentum=0.3, **TINY)
    stem = backbone_of(model).get_layer("stem_bn")
    batch = images(2, 40, 40)
    before = stem.moving_mean.numpy().copy()
    batch_mean = np.asarray(backbone_of(model).get_layer("stem_conv")(batch)).mean(axis=(0, 1, 2))
    model(batch, training=True)
    np.testing.assert_allclose(
        stem.moving_mean.numpy(), 0.3 * before + 0.7 * batch_mean, rtol=1e-4, atol=1e-5
    )


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_synchronized_batch_norm_model_saves_and_loads_as_keras(tmp_path) -> None:
    model = build("pspnet_small", synchronized_batch_norm=True, batch_norm_momentum=0.7, **TINY)
    batch = images(2, 40, 48)
    expected = model.predict(batch, verbose=0)
    model.save(tmp_path / "synced.keras")
    loaded = keras.saving.load_model(tmp_path / "synced.keras")
    norms = batch_norm_layers(loaded)
    assert len(norms) == moving_mean_count(loaded) == moving_mean_count(model)
    assert all(norm.synchronized and norm.momentum == pytest.approx(0.7) for norm in norms)
    for before, after in zip(expected, loaded.predict(batch, verbose=0), strict=True):
        np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("momentum", [1.0, -0.1, "0.9", True])
def test_bad_batch_norm_momentum_is_rejected_by_name(momentum) -> None:
    with pytest.raises(ValueError, match="batch_norm_momentum"):
        build("pspnet_small", batch_norm_momentum=momentum, **TINY)


def test_reduction_filters_reach_the_pyramid_branches() -> None:
    channels = build_backbone("small", width_multiplier=0.25).outputs[1].shape[-1]
    for filters, expected in ((None, channels // 4), (channels, channels), (3, 3)):
        model = build("pspnet_small", reduction_filters=filters, **TINY)
        pyramid = model.get_layer("pyramid_pooling")
        assert pyramid.output.shape[-1] == channels + 4 * expected


@pytest.mark.parametrize(("backbone", "width"), [("small", 1.0), ("small", 0.25), ("resnet50", 1.0)])
def test_backbone_channels_is_the_conv5_width(backbone, width) -> None:
    assert (
        backbone_channels(backbone, width)
        == build_backbone(backbone, width_multiplier=width).outputs[1].shape[-1]
    )


def test_imagenet_weights_available_when_cached_without_touching_the_network(monkeypatch, tmp_path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / IMAGENET_WEIGHTS_FILE).write_bytes(b"stand-in")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be tried when the file is cached")

    monkeypatch.setattr(socket, "create_connection", no_network)
    assert imagenet_weights_available() is True


@pytest.mark.parametrize(
    "failure",
    [
        TimeoutError("timed out"),
        socket.gaierror(-2, "Name or service not known"),
        ConnectionRefusedError(111, "refused"),
    ],
)
def test_imagenet_weights_unavailable_offline(monkeypatch, tmp_path, failure) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    seen = {}

    def offline(address, timeout=None, **kwargs):
        seen.update(address=address, timeout=timeout)
        raise failure

    monkeypatch.setattr(socket, "create_connection", offline)
    assert imagenet_weights_available(timeout=0.5) is False
    assert seen == {"address": ("storage.googleapis.com", 443), "timeout": 0.5}


def test_imagenet_weights_available_when_the_server_answers(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    closed = []

    class Connection:
        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: Connection())
    assert imagenet_weights_available() is True and closed == [True]


def test_imagenet_weights_available_rejects_a_bad_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        imagenet_weights_available(timeout=0)


def test_dilate_false_keeps_the_feature_grid_and_rate_one() -> None:
    assert stage_strides_and_dilations(8, dilate=False) == [(1, 1), (2, 1), (1, 1), (1, 1)]
    backbone = build_backbone("small", output_stride=8, width_multiplier=0.25, dilate=False)
    for stage in range(2, 6):
        for block in blocks_of(backbone, stage):
            assert three_by_three_dilations_and_strides(block)[0] == {(1, 1)}
    _, features = backbone.predict(images(1, 97, 161), verbose=0)
    assert features.shape[1:3] == (math.ceil(97 / 8), math.ceil(161 / 8))


def test_receptive_fields_dilated_and_not() -> None:
    # By hand for the small backbone: stem conv 3/2 and pool 3/2 give 7 px at jump 4; conv2 (two 3x3) 23;
    # conv3 (3x3/2, 3x3) 47 at jump 8; conv4 four 3x3 at rate 2 (+32 each) 175; conv5 two at rate 4 (+64)
    # 303; head 3x3 (+16) 319. Without dilation conv4 and conv5 add 16 per 3x3: 47 + 96 + 16 = 159.
    assert receptive_field_of("small", 8) == 319
    assert receptive_field_of("small", 8, dilate=False) == 159
    assert receptive_field_of("small", 16) == receptive_field_of("small", 32) == 319  # dilation keeps the field
    # ResNet-50's conv5 sees the well-known 483 pixels, dilated or strided; the head's 3x3 adds 2 x 8.
    assert receptive_field_of("resnet50", 8) == receptive_field_of("resnet50", 32) - 2 * 32 + 2 * 8 == 483 + 16
    assert receptive_field_of("resnet50", 8, dilate=False) < 300
    with pytest.raises(ValueError, match="dilate"):
        build("pspnet_small", dilate="no")


def test_measured_fields_of_whole_fcns_match_the_theory_plus_the_upsampling() -> None:
    # The logits' bilinear upsampling lets one output pixel see one more feature cell (8 px) than the head.
    # (Measured in graph mode: eagerly, TF's CPU filter-gradient kernel corrupted memory on these probes.)
    for dilate in (True, False):
        fcn = build("fcn_small", width=0.25, aux_head=False, dilate=dilate)
        theory = receptive_field_of("small", 8, dilate=dilate)
        assert empirical_receptive_field(fcn, input_size=416) == (theory + 8, theory + 8)
