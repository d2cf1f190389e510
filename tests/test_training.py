"""Training pieces against NumPy references: device plan, losses, optimiser, callbacks, and short real runs."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pytest

from pspnet_lib import models, training
from pspnet_lib.data import IGNORE_LABEL, NUM_CLASSES, PALETTE
from pspnet_lib.data.pipeline import scene_photos
from pspnet_lib.metrics import segmentation_metrics
from pspnet_lib.training import DeviceSwitches, GpuInfo, plan_devices

AMPERE = GpuInfo("A100", (8, 0))
TURING = GpuInfo("T4", (7, 5))
TWO_WORKERS = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}})


# --- device plan: every branch, on a CPU --------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpus", "switches", "tf_config", "expected"),
    [
        ([], DeviceSwitches(), None, ("default", "float32", False)),
        ([], DeviceSwitches(xla=True), None, ("default", "float32", False)),
        ([AMPERE], DeviceSwitches(), None, ("default", "mixed_bfloat16", True)),
        ([TURING], DeviceSwitches(), None, ("default", "mixed_float16", True)),
        ([AMPERE, TURING], DeviceSwitches(), None, ("mirrored", "mixed_float16", True)),
        ([AMPERE, AMPERE], DeviceSwitches(), None, ("mirrored", "mixed_bfloat16", True)),
        ([GpuInfo("unknown")], DeviceSwitches(), None, ("default", "mixed_float16", True)),
        ([AMPERE, AMPERE], DeviceSwitches(False, False, False), None, ("default", "float32", False)),
        ([AMPERE], DeviceSwitches(), TWO_WORKERS, ("multi_worker", "mixed_bfloat16", True)),
        ([], DeviceSwitches(), TWO_WORKERS, ("multi_worker", "float32", False)),
        ([], DeviceSwitches(distribute=False), TWO_WORKERS, ("default", "float32", False)),
    ],
)
def test_device_plan_branches(gpus, switches, tf_config, expected):
    plan = plan_devices(gpus, switches, tf_config)
    assert (plan.strategy, plan.precision, plan.jit_compile) == expected


def test_gpu_options_on_a_cpu_give_one_line_notice_and_a_cpu_plan():
    plan = plan_devices([], DeviceSwitches(mixed_precision=True, xla=True, distribute=True))
    assert (plan.strategy, plan.precision, plan.jit_compile) == ("default", "float32", False)
    assert "\n" not in plan.notice
    assert all(option in plan.notice for option in ("mixed precision", "XLA", "distribution"))


def test_automatic_or_off_switches_on_a_cpu_say_nothing():
    assert plan_devices([], DeviceSwitches()).notice is None
    assert plan_devices([], DeviceSwitches(False, False, False)).notice is None
    assert plan_devices([], DeviceSwitches(distribute=True), TWO_WORKERS).notice is None


def test_bad_tf_config_is_a_clear_error():
    with pytest.raises(ValueError, match="TF_CONFIG"):
        plan_devices([], DeviceSwitches(), "{not json")


# --- losses --------------------------------------------------------------------------------------------


def numpy_cross_entropy(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean over labelled pixels of -log softmax(logits)[label]."""
    shifted = logits - logits.max(-1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    valid = labels != IGNORE_LABEL
    picked = np.take_along_axis(log_probabilities, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    return float(-picked[valid].mean())


def random_batch(seed: int, shape=(2, 6, 7), channels=NUM_CLASSES):
    """Labels with ignored pixels and random logits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, shape)
    labels[rng.random(shape) < 0.3] = IGNORE_LABEL
    return labels.astype(np.int32), rng.normal(size=shape + (channels,)).astype(np.float32)


def test_segmentation_loss_matches_numpy_cross_entropy_over_labelled_pixels():
    labels, logits = random_batch(0)
    assert float(training.segmentation_loss()(labels, logits)) == pytest.approx(
        numpy_cross_entropy(labels, logits), rel=1e-5
    )


def test_segmentation_loss_of_a_fully_ignored_batch_is_zero_not_nan():
    labels = np.full((1, 3, 3), IGNORE_LABEL, np.int32)
    assert float(training.segmentation_loss()(labels, np.zeros((1, 3, 3, NUM_CLASSES), np.float32))) == 0.0


def numpy_soft_jaccard(labels: np.ndarray, logits: np.ndarray) -> float:
    """1 - mean over the classes present in `labels` of sum(p * t) / sum(p + t - p * t), labelled pixels only."""
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    valid = labels != IGNORE_LABEL
    ious = []
    for class_id in np.unique(labels[valid]):
        p, t = probabilities[..., class_id][valid], (labels[valid] == class_id).astype(float)
        ious.append((p * t).sum() / (p + t - p * t).sum())
    return 1.0 - float(np.mean(ious))


def test_cross_entropy_jaccard_adds_the_weighted_soft_jaccard_of_the_present_classes():
    labels, logits = random_batch(4)
    labels[labels == 3] = 5  # class 3 absent: it must not count in the mean
    loss = training.segmentation_loss(jaccard_weight=0.5)
    assert isinstance(loss, training.CrossEntropyJaccard)
    expected = numpy_cross_entropy(labels, logits) + 0.5 * numpy_soft_jaccard(labels, logits)
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(training.soft_jaccard_loss(labels, logits)) == pytest.approx(numpy_soft_jaccard(labels, logits), rel=1e-5)


def test_the_soft_jaccard_is_near_zero_for_confident_right_logits_and_zero_on_a_fully_ignored_batch():
    labels, _ = random_batch(5)
    right = np.where(np.eye(NUM_CLASSES, dtype=bool)[np.where(labels == IGNORE_LABEL, 0, labels)], 30.0, 0.0)
    assert float(training.soft_jaccard_loss(labels, right.astype(np.float32))) < 1e-6
    ignored = np.full((1, 3, 3), IGNORE_LABEL, np.int32)
    zeros = np.zeros((1, 3, 3, NUM_CLASSES), np.float32)
    assert float(training.segmentation_loss(jaccard_weight=1.0)(ignored, zeros)) == 0.0


def test_a_negative_jaccard_weight_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="jaccard_weight"):
        training.segmentation_loss(jaccard_weight=-1.0)
    with pytest.raises(ValueError, match="jaccard_weight must be >= 0, got -0.1"):
        training.configure(out=str(tmp_path / "run"), jaccard_weight=-0.1)


def test_the_jaccard_term_goes_on_the_main_output_only_and_a_saved_model_reloads_with_it(tmp_path):
    keras.utils.set_random_seed(0)
    model = two_headed_model()
    training.compile_for_training(model, keras.optimizers.SGD(0.0), aux_weight=0.4, jaccard_weight=1.0)
    images = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    labels, _ = random_batch(6, (2, 8, 8))
    main, aux = (np.asarray(output) for output in model(images))
    expected = numpy_cross_entropy(labels, main) + numpy_soft_jaccard(labels, main) + 0.4 * numpy_cross_entropy(labels, aux)
    logs = model.evaluate(images, {"logits": labels, "aux_logits": labels}, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    again = reloaded.evaluate(images, {"logits": labels, "aux_logits": labels}, verbose=0, return_dict=True)
    assert again["loss"] == pytest.approx(expected, rel=1e-4)


def test_palette_color_mse_matches_numpy_reference():
    labels, _ = random_batch(1)
    rgb = np.random.default_rng(2).random(labels.shape + (3,)).astype(np.float32)
    per_image = []
    for image_labels, image_rgb in zip(labels, rgb, strict=True):
        valid = image_labels != IGNORE_LABEL
        target = PALETTE[image_labels[valid]] / 255.0
        per_image.append(((image_rgb[valid] - target) ** 2).mean())
    assert training.PaletteColourMSE is training.PaletteColorMSE  # the old spelling still works
    assert float(training.PaletteColorMSE()(labels, rgb)) == pytest.approx(np.mean(per_image), rel=1e-5)


def two_headed_model(size: int = 8) -> keras.Model:
    """A tiny model with a main and an auxiliary logits output, named as the PSPNet builders name them."""
    inputs = keras.Input((size, size, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", name="backbone_conv")(inputs)
    logits = keras.layers.Conv2D(NUM_CLASSES, 1, name="logits")(features)
    aux_logits = keras.layers.Conv2D(NUM_CLASSES, 1, name="aux_logits")(features)
    return keras.Model(inputs, [logits, aux_logits])


def test_auxiliary_loss_is_added_with_its_weight():
    keras.utils.set_random_seed(0)
    model = two_headed_model()
    training.compile_for_training(model, keras.optimizers.SGD(0.0), aux_weight=0.4)
    images = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    labels, _ = random_batch(3, (2, 8, 8))
    main, aux = (np.asarray(output) for output in model(images))
    expected = numpy_cross_entropy(labels, main) + 0.4 * numpy_cross_entropy(labels, aux)
    logs = model.evaluate(images, {"logits": labels, "aux_logits": labels}, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    assert training.monitor_name(model) == "val_logits_miou"


# --- optimiser -----------------------------------------------------------------------------------------


def test_poly_schedule_follows_the_paper_formula():
    schedule = training.poly_schedule(0.01, total_steps=100)
    for step in (0, 10, 50, 99, 100, 150):
        expected = 0.01 * (1 - min(step, 100) / 100) ** 0.9
        assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_default_optimizer_is_the_papers_sgd():
    optimizer = training.build_optimizer("sgd", total_steps=10)
    assert isinstance(optimizer, training.PaperSGD)
    assert optimizer.momentum == pytest.approx(0.9) and optimizer.l2_weight_decay == pytest.approx(1e-4)
    assert optimizer.weight_decay is None  # no decoupled decay on top of the coupled one
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    decoupled = training.build_optimizer("sgdw", total_steps=10)
    assert type(decoupled) is keras.optimizers.SGD and decoupled.weight_decay == pytest.approx(1e-4)
    assert isinstance(training.build_optimizer("adam", total_steps=10), keras.optimizers.Adam)


@pytest.mark.parametrize(
    ("name", "lr", "extra", "message"),
    [
        ("rmsprop", None, {}, "optimizer"),
        ("sgd", -1.0, {}, "learning rate"),
        ("adam", None, {"head_lr_multiplier": 10.0}, "'sgd' only"),
    ],
)
def test_bad_optimizer_settings_are_clear_errors(name, lr, extra, message):
    with pytest.raises(ValueError, match=message):
        training.build_optimizer(name, lr, total_steps=10, **extra)


def pytorch_sgd_reference(weights, gradients, learning_rates, momentum=0.9, weight_decay=1e-4):
    """NumPy transcription of torch.optim.SGD's documented step (dampening 0, no Nesterov), one lr per weight.

    g = g + weight_decay * w; buf = g on the first step, else momentum * buf + g; w = w - lr * buf.
    """
    weights = [w.astype(np.float64) for w in weights]
    buffers = [None] * len(weights)
    for step_gradients in gradients:
        for index, gradient in enumerate(step_gradients):
            g = gradient + weight_decay * weights[index]
            buffers[index] = g if buffers[index] is None else momentum * buffers[index] + g
            weights[index] = weights[index] - learning_rates[index] * buffers[index]
    return weights


@pytest.mark.parametrize("weight_decay", [1e-4, 0.05])  # the paper's, and one large enough to tell the kinds apart
def test_paper_sgd_matches_pytorch_sgd_with_a_10x_group_for_the_new_layers(weight_decay):
    from pspnet_lib import models

    model = models.build_pspnet(NUM_CLASSES, backbone="small", input_shape=(64, 64, 3), width_multiplier=0.5)
    new_layers = models.new_layer_variables(model)
    # total_steps so large that the poly schedule keeps lr at 0.01 over these steps (relative change < 1e-8)
    optimizer = training.build_optimizer(
        "sgd", 0.01, total_steps=10**9, weight_decay=weight_decay,
        new_layer_variables=new_layers, head_lr_multiplier=10.0,
    )
    variables = model.trainable_variables
    start = [np.asarray(v.numpy()) for v in variables]
    rng = np.random.default_rng(0)
    gradients = [[rng.normal(0, 1, w.shape).astype(np.float32) for w in start] for _ in range(5)]
    for step_gradients in gradients:
        optimizer.apply_gradients(zip(step_gradients, variables, strict=True))
    boosted = {id(v) for v in new_layers}
    rates = [0.1 if id(v) in boosted else 0.01 for v in variables]
    assert 0 < rates.count(0.1) < len(rates)  # both groups are exercised

    def largest_deviation(reference):
        return max(np.abs(v.numpy() - r).max() / max(1e-3, np.abs(r).max()) for v, r in zip(variables, reference, strict=True))

    assert largest_deviation(pytorch_sgd_reference(start, gradients, rates, weight_decay=weight_decay)) < 1e-5
    if weight_decay > 1e-3:  # the comparison can tell: without the decay, or with 1x for the head, it fails
        assert largest_deviation(pytorch_sgd_reference(start, gradients, rates, weight_decay=0.0)) > 1e-3
        assert largest_deviation(pytorch_sgd_reference(start, gradients, [0.01] * len(rates), weight_decay=weight_decay)) > 1e-3


def test_new_layers_are_the_pyramid_module_and_both_heads():
    from pspnet_lib import models

    model = models.build_pspnet(NUM_CLASSES, backbone="small", input_shape=(64, 64, 3), width_multiplier=0.5)
    new_layer_names = {layer.name for layer in model.layers if layer.name.startswith(("pyramid", "head_", "aux_head_"))}
    expected = {id(v) for name in new_layer_names for v in model.get_layer(name).trainable_variables}
    assert {id(v) for v in models.new_layer_variables(model)} == expected
    backbone = model.get_layer(models.BACKBONE_NAME).trainable_variables
    assert len(expected) + len(backbone) == len(model.trainable_variables)


@pytest.mark.parametrize(
    ("settings", "multiplier"),
    [
        ({"weights": "imagenet"}, 10.0),
        ({}, 1.0),
        ({"weights": "imagenet", "optimizer": "adam"}, 1.0),
        ({"weights": "imagenet", "head_lr_multiplier": 1.0}, 1.0),
        ({"head_lr_multiplier": 5.0, "optimizer": "sgd"}, 5.0),
    ],
)
def test_new_layers_learn_10x_faster_by_default_from_imagenet_weights(tmp_path, settings, multiplier):
    assert training.configure(out=str(tmp_path), **settings).recipe.head_lr_multiplier == multiplier


def test_a_head_multiplier_with_adam_is_refused(tmp_path):
    with pytest.raises(ValueError, match="head_lr_multiplier applies to optimizer 'sgd' only"):
        training.configure(out=str(tmp_path), optimizer="adam", head_lr_multiplier=10.0)


# --- callbacks and kill-safe writes --------------------------------------------------------------------


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "config.json"
    training.atomic_write_text(path, "old")

    def broken_writer(temporary):
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        training.callbacks.atomic_write(path, broken_writer)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_csv_history_drops_rows_of_the_epoch_a_resumed_run_repeats(tmp_path):
    path = tmp_path / "history.csv"
    first = training.CsvHistory(path)
    for epoch in range(2):
        first.on_epoch_begin(epoch)
        first.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    resumed = training.CsvHistory(path)  # the backup only held epoch 1: epoch 2 runs again
    resumed.on_epoch_begin(1)
    resumed.on_epoch_end(1, {"loss": 0.25})
    assert training.read_history(path) == [{"epoch": 1.0, "loss": 1.0}, {"epoch": 2.0, "loss": 0.25}]


def test_best_checkpoint_saves_only_improvements_and_remembers_them(tmp_path):
    model = two_headed_model()
    checkpoint = training.BestCheckpoint(tmp_path / "best.keras", monitor="val_miou")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"val_miou": 0.3})
    saved_at = (tmp_path / "best.keras").stat().st_mtime_ns
    checkpoint.on_epoch_end(1, {"val_miou": 0.2})
    assert (tmp_path / "best.keras").stat().st_mtime_ns == saved_at
    assert training.BestCheckpoint(tmp_path / "best.keras", monitor="val_miou").best == pytest.approx(0.3)


def _fit_two_epochs(model: keras.Model) -> list[float]:
    """Two epochs of fit on fixed data: the losses."""
    images = np.random.default_rng(0).random((4, 8, 8, 3)).astype(np.float32)
    labels, _ = random_batch(5, (4, 8, 8))
    history = model.fit(images, {"logits": labels, "aux_logits": labels}, batch_size=2, epochs=2, shuffle=False,
                        verbose=0)
    return history.history["loss"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_compiled_model_is_ready_to_train_and_trains_as_keras_own_lazy_build_would(optimizer):
    """compile_for_training builds the optimizer's slots, loss trackers and metrics before fit (what it costs is
    the benchmark's business); the blank image it builds them from leaves no trace in scores or results."""
    keras.utils.set_random_seed(0)
    ready = two_headed_model()
    training.compile_for_training(ready, training.build_optimizer(optimizer, 0.01, total_steps=4))
    assert ready.optimizer.built and len(ready.optimizer.variables) > 2  # iterations, learning rate and slots
    metrics = {metric.name: metric for holder in ready.metrics for metric in getattr(holder, "metrics", [holder])}
    assert {"miou", "pixel_accuracy"} <= set(metrics)
    assert all(float(keras.ops.convert_to_numpy(metric.result())) == 0 for metric in metrics.values())
    keras.utils.set_random_seed(0)
    lazy = two_headed_model()  # the same model compiled with Keras alone, which builds all that inside fit
    lazy.compile(
        optimizer=training.build_optimizer(optimizer, 0.01, total_steps=4),
        loss={name: training.segmentation_loss() for name in lazy.output_names},
        loss_weights={"logits": 1.0, "aux_logits": training.AUX_WEIGHT},
        metrics={"logits": segmentation_metrics(NUM_CLASSES)},
    )
    assert not lazy.optimizer.built
    assert _fit_two_epochs(ready) == _fit_two_epochs(lazy)
    for built, unbuilt in zip(ready.get_weights(), lazy.get_weights(), strict=True):
        np.testing.assert_array_equal(built, unbuilt)


def test_nan_loss_stops_fit_with_a_clear_error():
    model = two_headed_model()
    training.compile_for_training(model, keras.optimizers.SGD(0.01))
    images = np.full((2, 8, 8, 3), np.nan, np.float32)
    labels = np.zeros((2, 8, 8), np.int32)
    with pytest.raises(training.TrainingDiverged, match="NaN or infinite at epoch 1, batch 1.*--lr"):
        model.fit(images, {"logits": labels, "aux_logits": labels}, batch_size=1, epochs=2,
                  callbacks=[training.NanGuard()], verbose=0)


def test_time_budget_stops_training():
    model = two_headed_model()
    training.compile_for_training(model, keras.optimizers.SGD(0.01))
    budget = training.TimeBudget(max_minutes=1e-9)
    images, labels = np.zeros((4, 8, 8, 3), np.float32), np.zeros((4, 8, 8), np.int32)
    history = model.fit(images, {"logits": labels, "aux_logits": labels}, batch_size=1, epochs=5,
                        callbacks=[budget], verbose=0)
    assert budget.stopped and len(history.history["loss"]) == 1
    assert not math.isnan(history.history["loss"][0])


@pytest.mark.slow
def test_every_epoch_is_one_pass_over_the_training_pairs(synthetic_pairs, tmp_path, recwarn):
    """train reads one repeated dataset (Keras would replace a finite one's iterator after every epoch, which can
    stall the next epoch's start: the benchmark's business): an epoch is still exactly one pass over the
    training pairs, and no epoch runs out of data."""
    config = training.configure(
        out=str(tmp_path / "run"), data=str(synthetic_pairs), backbone="small", image_size=48, batch_size=2,
        epochs=3, limit=5, val_limit=1, tensorboard=False, precise_batch_norm=False,
    )
    one_pass = int(training.inputs.load_datasets(config, synthetic_pairs)[0].cardinality())
    assert one_pass in (2, 3)  # 5 pairs in batches of 2 (the last one partial, or dropped)
    result = training.train(config, verbose=0)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert int(result.model.optimizer.iterations) == 3 * one_pass
    assert not [warning for warning in recwarn if "ran out of data" in str(warning.message)]


@pytest.mark.slow
def test_live_view_writes_a_png_each_epoch_without_a_notebook(tmp_path):
    from PIL import Image

    from pspnet_lib.live_view import LiveView

    model = two_headed_model()
    training.compile_for_training(model, keras.optimizers.SGD(0.01))
    images, labels = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32), np.zeros((2, 8, 8), np.int32)
    view = LiveView(tmp_path, images, labels)
    model.fit(images, {"logits": labels, "aux_logits": labels}, epochs=2, callbacks=[view], verbose=0)
    assert [row["epoch"] for row in view.history] == [1, 2]
    assert Image.open(tmp_path / "live_view.png").format == "PNG"


# --- ImageNet weights ----------------------------------------------------------------------------------


@pytest.fixture
def offline_keras_downloads(monkeypatch):
    """Keras' file download fails as it does here without a network (no real request is made).

    The server check `models.imagenet_weights_available` is told the server answers, so the download itself
    is attempted and fails.
    """
    from keras.src.utils import file_utils

    from pspnet_lib import models

    def refuse(fname=None, origin=None, *args, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", refuse)
    monkeypatch.setattr(models, "imagenet_weights_available", lambda *args, **kwargs: True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"weights": "imagenet", "backbone": "small"}, "backbone='small'"),
        ({"weights": "imagenet", "network": "article"}, "network='article'"),
        ({"weights": "places365"}, r"weights must be one of \(None, 'imagenet'\), got 'places365'"),
    ],
)
def test_impossible_weights_settings_are_clear_errors(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message):
        training.configure(out=str(tmp_path), **settings)


def test_offline_imagenet_run_fails_at_once_with_what_to_do(
    offline_keras_downloads, synthetic_pairs, tmp_path, monkeypatch
):
    from pspnet_lib.training import run

    def no_data_please(*args, **kwargs):
        raise AssertionError("the data was loaded before the weights were checked")

    monkeypatch.setattr(run, "load_datasets", no_data_please)
    config = training.configure(out=str(tmp_path / "run"), data=str(synthetic_pairs), weights="imagenet")
    with pytest.raises(training.PretrainedWeightsUnavailable) as caught:
        training.train(config)
    message = str(caught.value)
    assert "ImageNet" in message and "name resolution" in message and "--weights none" in message
    assert not (tmp_path / "run" / "config.json").exists()


def test_unreachable_imagenet_weights_fail_before_any_download(synthetic_pairs, tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    from pspnet_lib import models

    def no_download_please(*args, **kwargs):
        raise AssertionError("a download was attempted although the server is unreachable")

    monkeypatch.setattr(file_utils, "get_file", no_download_please)
    monkeypatch.setattr(models, "imagenet_weights_available", lambda *args, **kwargs: False)
    config = training.configure(out=str(tmp_path / "run"), data=str(synthetic_pairs), weights="imagenet")
    with pytest.raises(training.PretrainedWeightsUnavailable, match="cannot be reached.*--weights none"):
        training.train(config)
    assert not (tmp_path / "run" / "config.json").exists()


def test_offline_imagenet_train_command_is_one_error_line(offline_keras_downloads, synthetic_pairs, tmp_path, capsys):
    from pspnet_lib.cli import main

    args = ["train", "--data", str(synthetic_pairs), "--out", str(tmp_path / "run"), "--backbone", "resnet50",
            "--weights", "imagenet", "--quiet", "--no-tensorboard"]
    assert main(args) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ImageNet" in errors[0] and "--weights" in errors[0]


def test_a_resumed_imagenet_run_keeps_its_own_weights(offline_keras_downloads, tmp_path):
    from pspnet_lib.training import run

    (tmp_path / "backup").mkdir()  # an interrupted run: BackupAndRestore restores its weights
    config = training.configure(out=str(tmp_path), weights="imagenet")
    assert run.load_pretrained_source(config) is None  # no download attempted (it would raise here)


@pytest.mark.slow
def test_imagenet_source_weights_are_copied_into_the_backbone(tmp_path):
    from pspnet_lib.training import run

    keras.utils.set_random_seed(1)
    source = keras.applications.ResNet50(weights=None, include_top=False)  # stands in for the download
    config = training.configure(out=str(tmp_path), weights="imagenet", network="fcn")
    model = run.build_model(config, source)
    nested = {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)}
    for name in ("conv1_conv", "conv3_block2_2_conv", "conv5_block3_3_bn"):
        for copied, original in zip(nested[name].weights, source.get_layer(name).weights, strict=True):
            np.testing.assert_array_equal(copied.numpy(), original.numpy(), err_msg=copied.path)


class SimulatedCrash(Exception):
    """Stands in for a killed process."""


class CrashAtEpoch(keras.callbacks.Callback):
    """Raise SimulatedCrash when epoch index `epoch` begins."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise SimulatedCrash(f"killed at the start of epoch {epoch + 1}")


@pytest.mark.slow
def test_live_view_of_a_resumed_run_plots_every_epoch(synthetic_pairs, tmp_path):
    from pspnet_lib.live_view import LiveView

    config = training.configure(
        out=str(tmp_path / "run"), data=str(synthetic_pairs), backbone="small", image_size=64, batch_size=2,
        epochs=3, limit=2, tensorboard=False,
    )
    with pytest.raises(SimulatedCrash):
        training.train(config, callbacks=[CrashAtEpoch(2)], verbose=0)
    assert [row["epoch"] for row in training.read_history(config.run_dir / "history.csv")] == [1, 2]

    images, labels = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32), None
    view = LiveView(config.run_dir, images, labels)
    training.train(config, callbacks=[view], verbose=0)
    on_disk = training.read_history(config.run_dir / "history.csv")
    assert [row["epoch"] for row in on_disk] == [1, 2, 3]
    assert [row["epoch"] for row in view.history] == [1, 2, 3]
    loss_axes = view.figure.subfigs[0].axes[0]
    plotted = {line.get_label(): line for line in loss_axes.lines}
    assert set(plotted) >= {"loss", "val_loss"}
    np.testing.assert_array_equal(plotted["loss"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(plotted["loss"].get_ydata(), [row["loss"] for row in on_disk], rtol=1e-6)


def test_live_view_replaces_an_epoch_an_interrupted_run_repeats(tmp_path):
    from pspnet_lib.live_view import LiveView

    training.atomic_write_text(tmp_path / "history.csv", "epoch,loss\n1,0.9\n2,0.8\n")
    view = LiveView(tmp_path, np.zeros((1, 8, 8, 3), np.float32), every=100)  # never draws here
    view.on_train_begin()
    view.on_epoch_end(1, {"loss": 0.7})  # epoch 2 was recorded, then the run died before its backup
    assert view.history == [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.7}]


def test_precision_scope_restores_the_global_dtype_policy_even_after_an_error():
    from pspnet_lib.training.devices import precision_scope

    before = keras.mixed_precision.global_policy().name
    plan = training.DevicePlan("default", "mixed_float16", jit_compile=False)
    with pytest.raises(RuntimeError), precision_scope(plan):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        raise RuntimeError("a run that fails half-way")
    assert keras.mixed_precision.global_policy().name == before


def test_a_color_head_pspnet_paints_rgb_trains_with_the_color_mse_and_is_scored_by_its_colors(tmp_path):
    from pspnet_lib import inference, models
    from pspnet_lib.data import PALETTE

    spec = models.NetworkSpec(backbone="small", width=0.25, output="color")
    model = models.build(spec)
    assert models.is_color_model(model) and not models.is_color_model(models.build(spec.replace(output="logits")))
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    painted = [np.asarray(out) for out in model(images, training=False)]
    assert [out.shape for out in painted] == [(2, 32, 32, 3)] * 2  # main and auxiliary head, RGB each
    assert all(((out >= 0) & (out <= 1)).all() for out in painted)
    # Both heads get the colour MSE, the auxiliary one weighted AUX_WEIGHT: the total is their weighted sum.
    training.compile_for_training(model, training.build_optimizer("adam", 1e-3, 10), aux_weight=0.4)
    labels = np.full((2, 32, 32), 13, np.int32)
    logs = model.evaluate(images, {name: labels for name in model.output_names}, verbose=0, return_dict=True)
    mse = training.PaletteColorMSE()
    expected = float(mse(labels, painted[0])) + 0.4 * float(mse(labels, painted[1]))
    assert logs["loss"] == pytest.approx(expected, rel=1e-4)
    # Scored by nearest palette colour, not argmax over three channels: a perfect painting scores 1.
    car = np.broadcast_to(PALETTE[13] / 255.0, (2, 32, 32, 3)).astype(np.float32)
    assert np.array_equal(inference.colors_to_probabilities(car).argmax(-1), labels)
    saved = tmp_path / "color.keras"
    model.save(saved)
    assert models.is_color_model(inference.load_model(saved))  # the saved model still says what it paints


def test_a_spec_names_an_unknown_output():
    from pspnet_lib import models

    with pytest.raises(ValueError, match="output must be one of"):
        models.NetworkSpec(output="rgb")


def test_precise_batch_norm_sets_each_statistic_to_the_mean_over_batches_and_keeps_the_weights():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 2))
    norm = keras.layers.BatchNormalization(momentum=0.9, name="norm")
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, name="out")(norm(inputs)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, 1.0 + loc, size=(5, 4, 4, 2)).astype("float32") for loc in (0.0, 1.0, 3.0)]
    weights = [w.copy() for w in model.get_weights()[:2]] + [w.copy() for w in model.get_weights()[4:]]
    assert training.recompute_batch_norm_statistics(model, batches) == 3
    np.testing.assert_allclose(norm.moving_mean.numpy(), np.mean([b.mean(axis=(0, 1, 2)) for b in batches], axis=0), rtol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), np.mean([b.var(axis=(0, 1, 2)) for b in batches], axis=0), rtol=1e-4)
    assert norm.momentum == 0.9  # restored
    for before, after in zip(weights, model.get_weights()[:2] + model.get_weights()[4:], strict=True):
        np.testing.assert_array_equal(before, after)  # gamma, beta and the convolution untouched


@pytest.mark.slow
def test_a_cpu_recipe_run_ends_with_batch_norm_statistics_of_whole_training_scenes(synthetic_pairs, tmp_path):
    config = training.configure(out=str(tmp_path / "run"), data=str(synthetic_pairs), image_size=48,
                                  batch_size=4, epochs=2, tensorboard=False)
    assert config.recipe.name == "cpu" and config.recipe.precise_batch_norm  # the CPU recipe's default
    result = training.train(config, verbose=0)
    saved = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    # The pass averaged every one of the 8 training scenes (fewer than PRECISE_BN_SCENES): again, nothing changes.
    assert training.callbacks.PRECISE_BN_SCENES > 8
    scenes = scene_photos(synthetic_pairs, "train", image_size=48, batch_size=4, count=8)
    redone = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    training.recompute_batch_norm_statistics(redone, scenes)
    for kept, again in zip(models.batch_norm_layers(saved), models.batch_norm_layers(redone), strict=True):
        np.testing.assert_allclose(kept.moving_mean.numpy(), again.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(kept.moving_variance.numpy(), again.moving_variance.numpy(), rtol=1e-5, atol=1e-6)
    plain = training.configure(out=str(tmp_path / "plain"), data=str(synthetic_pairs), image_size=48, batch_size=4,
                                 epochs=2, tensorboard=False, precise_batch_norm=False)
    plain_model = training.train(plain, verbose=0).model
    differs = [not np.allclose(a.moving_mean.numpy(), b.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
               for a, b in zip(models.batch_norm_layers(plain_model), models.batch_norm_layers(result.model), strict=True)]
    assert any(differs)  # the running averages of training crops are not those statistics
