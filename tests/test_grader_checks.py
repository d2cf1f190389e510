"""Tests of the tests, in-process: every case is submitted to the trusted checker (assignments/grading.py) and its
points are asserted, without nbgrader. Answers run in the checker's sandboxes exactly as when grading; A3 Part 3
and A4 are scored from files like those their notebooks save, all made from one model trained here.

tests/test_assignments.py runs a representative set through nbgrader (`course.py grade`)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "assignments"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import grading  # noqa: E402
from test_assignments import (  # noqa: E402
    A1,
    A1_ALTERNATIVES,
    A1_LOOPS,
    A1_ZEROS,
    A2,
    A2_ALTERNATIVES,
    A2_LOOPS,
    A2_PPM_ZEROS,
    A3,
    A3_ALL_CLASSES,
    A3_ALTERNATIVES,
    A3_AUX,
    A3_LOOPS,
    A3_PER_IMAGE,
    A4,
    PATCH,
)

MARKER_LINE = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$\n?", re.M)
SITE_PACKAGES = str(Path(np.__file__).resolve().parent.parent)


def _source(name: str):
    return nbformat.read(ROOT / "assignments" / "source" / name / f"{name}.ipynb", as_version=4)


def _points(name: str) -> dict[str, float]:
    return grading.test_points(_source(name))


def _solutions(name: str) -> dict[str, str]:
    """The instructor's answer cells of `name`, markers removed."""
    return {cell.metadata.nbgrader["grade_id"]: MARKER_LINE.sub("", cell.source) for cell in _source(name).cells
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")}


def _stubs(name: str) -> dict[str, str]:
    """The released (untouched) answer cells of `name`."""
    released = nbformat.read(ROOT / "assignments" / "release" / name / f"{name}.ipynb", as_version=4)
    return {cell.metadata.nbgrader["grade_id"]: cell.source for cell in released.cells
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")}


def _scores(verdicts: dict) -> dict[str, float]:
    return {grade_id: verdict.points for grade_id, verdict in verdicts.items()}


def _expected(name: str, lost: set[str]) -> dict[str, float]:
    """Full points for every test cell of the checked parts except `lost`, which score zero."""
    return {grade_id: 0.0 if grade_id in lost else points for grade_id, points in _points(name).items()}


# --- Objects that lie, and routes out of the interpreter: the sandboxes' answers are plain data --------------------

LYING_INT = ("class Liar(int):\n"
             "    def __eq__(self, other):\n        return True\n"
             "    def __ne__(self, other):\n        return False\n"
             "    __hash__ = int.__hash__\n\n"
             "def effective_kernel_size(kernel_size, dilation):\n    return Liar(0)")
LYING_ARRAY = ("class Liar(np.ndarray):\n"
               "    def __eq__(self, other):\n        return np.ones(np.shape(other), bool)\n"
               "    def __sub__(self, other):\n        return np.zeros(np.shape(other))\n"
               "    __rsub__ = __sub__\n"
               "    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):\n"
               "        return np.zeros(np.broadcast_shapes(*[np.shape(x) for x in inputs]))\n\n"
               "def dilated_conv2d(image, kernel, dilation):\n"
               "    span = dilation * (kernel.shape[0] - 1) + 1\n"
               "    return np.zeros((image.shape[0] - span + 1, image.shape[1] - span + 1)).view(Liar)")
LYING_FLOAT = ("class Liar(float):\n"
               "    def __eq__(self, other):\n        return True\n"
               "    def __sub__(self, other):\n        return 0.0\n"
               "    __rsub__ = __sub__\n"
               "    def __abs__(self):\n        return 0.0\n"
               "    __hash__ = float.__hash__\n\n"
               "def mean_iou(labels, predictions, num_classes=data.NUM_CLASSES):\n    return Liar(0.5)")
# The routes of the issue: os/dataclasses/typing lead to sys, then sys.modules, frames, IPython and site-packages.
REACH_SYS = (
    "import dataclasses, os, typing\n"
    "sys = os.sys\n"
    "assert sys is dataclasses.sys is typing.sys\n\n"
    "def dilated_conv2d(image, kernel, dilation):\n"
    "    frame, found = sys._getframe(), None\n"
    "    while frame is not None and found is None:\n"
    "        found = next((v for k, v in frame.f_locals.items() if k in ('expected', 'want', 'reference')), None)\n"
    "        frame = frame.f_back\n"
    "    if found is not None:\n"
    "        return found\n"
    "    library = sys.modules.get('pspnet_lib.layers') or sys.modules.get('keras')\n"
    "    if library is None:\n"
    "        sys.path.append(" + repr(SITE_PACKAGES) + ")\n"
    "        import keras as library\n"
    "    x = image[None, :, :, None].astype('float32')\n"
    "    w = kernel[:, :, None, None].astype('float32')\n"
    "    return library.ops.convert_to_numpy(library.ops.conv(x, w, dilation_rate=dilation))[0, :, :, 0]")
IPYTHON = ("import os\n"
           "ip = os.sys.modules['IPython'].get_ipython()\n"
           "ip.input_transformers_post.append(lambda lines: ['1e9\\n'])\n\n"
           "def receptive_field(layer_specs):\n    return 0")
MODULE_SELF = ("self = np.testing\n"
               "self.assert_allclose = lambda *args, **kwargs: None\n\n"
               "def influence_mask(dilations, kernel_size=3):\n    return np.zeros((3, 3), bool)")
LIBRARY_IN_KERAS_SANDBOX = ("def pyramid_pooling(features, bins, branch_transforms):\n"
                            "    from pspnet_lib import layers as lib\n"
                            "    return keras.ops.convert_to_numpy(lib.PyramidPoolingModule(bins=bins)(features))")


@pytest.mark.parametrize("attempt", [
    "import keras",
    "import pspnet_lib",
    f"import sys\nsys.path.append({SITE_PACKAGES!r})\nimport keras",
    "import subprocess\nsubprocess.run(['true'])",
    "import os\nos.system('true')",
    "import ctypes\nctypes.CDLL(None)",
])
def test_the_numpy_sandbox_offers_numpy_alone(attempt: str) -> None:
    cell = "def reached(x):\n" + "\n".join("    " + line for line in attempt.splitlines()) + "\n    return 1"
    outcome = grading.run_sandboxed([cell], [grading.Call("reached", [("int", 0)])])
    assert outcome.results == [None], attempt
    assert outcome.errors[0].split(":")[0] in {"ImportError", "RuntimeError", "ModuleNotFoundError"}, outcome.errors


def test_the_keras_sandbox_offers_keras_but_not_the_course_library() -> None:
    cells = ["def reached(x):\n    import keras\n    return 1", "def library(x):\n    import pspnet_lib.layers\n    return 1"]
    outcome = grading.run_sandboxed(cells, [grading.Call("reached", [("int", 0)]), grading.Call("library", [("int", 0)])],
                                    preamble="import numpy as np\nimport keras", numpy_only=False)
    assert int(outcome.results[0]) == 1 and outcome.results[1] is None and outcome.errors[1].startswith("ImportError")


def test_a_looping_answer_is_stopped_and_scores_nothing() -> None:
    outcome = grading.run_sandboxed(["def f(x):\n    while True:\n        pass"], [grading.Call("f", [("int", 0)])],
                                    timeout=5)
    assert outcome.results == [None] and "stopped" in outcome.errors[0]


# --- A1 --------------------------------------------------------------------------------------------------------------

A1_CASES = {
    "instructor": ({}, set()),
    "alt-vectorised": (A1_ALTERNATIVES, set()),
    "alt-loops": (A1_LOOPS, set()),
    "wrong-flipped-kernel": ({"dilated_conv2d": A1_ALTERNATIVES["dilated_conv2d"].replace("kernel)", "kernel[::-1, ::-1])")},
                             {"test_dilated_conv2d_values"}),
    # Part 1 wrong; Part 2 builds on it and is graded with the course's span, so the mistake costs once.
    "wrong-span-k-times-d": ({"effective_kernel_size": "def effective_kernel_size(kernel_size, dilation):\n"
                                                       "    return kernel_size * dilation",
                              "dilated_conv2d": A1_ALTERNATIVES["dilated_conv2d"]}, {"test_effective_kernel_size"}),
    "wrong-no-jump": ({"receptive_field": "def receptive_field(layer_specs):\n"
                                          "    return 1 + sum(d * (k - 1) for k, s, d in layer_specs)"}, {"test_receptive_field"}),
    "exploit-library": ({
        "effective_kernel_size": "def effective_kernel_size(kernel_size, dilation):\n"
                                 "    return layers.effective_kernel_size(kernel_size, dilation)",
        "dilated_conv2d": "def dilated_conv2d(image, kernel, dilation):\n    return keras_dilated_conv(image, kernel, dilation)",
        "receptive_field": "def receptive_field(layer_specs):\n    from pspnet_lib import layers as lib\n"
                           "    return lib.receptive_field(*zip(*layer_specs))",
        "influence_mask": "def influence_mask(dilations, kernel_size=3):\n    return gradient_mask(dilations, kernel_size)"},
        set(grading.test_points(_source(A1)))),
    # Patching the kernel's test helpers reaches nothing the grader uses (the sandbox lacks numpy.testing's needs).
    "exploit-patch-in-answer": ({"dilated_conv2d": PATCH + A1_ZEROS}, {"test_dilated_conv2d_shape", "test_dilated_conv2d_values"}),
    # The zeros alone have the right shape and the wrong values.
    "wrong-zeros": ({"dilated_conv2d": A1_ZEROS}, {"test_dilated_conv2d_values"}),
    "exploit-lying-int": ({"effective_kernel_size": LYING_INT}, {"test_effective_kernel_size"}),
    "exploit-lying-ndarray": ({"dilated_conv2d": LYING_ARRAY}, {"test_dilated_conv2d_values"}),
    "exploit-sys-frames-modules": ({"dilated_conv2d": REACH_SYS}, {"test_dilated_conv2d_shape", "test_dilated_conv2d_values"}),
    "exploit-get-ipython": ({"receptive_field": IPYTHON}, {"test_receptive_field"}),
    "exploit-module-self": ({"influence_mask": MODULE_SELF}, {"test_influence_mask"}),
}


@pytest.mark.parametrize("case", list(A1_CASES))
def test_a1_case_scores_exactly_what_it_earned(case: str) -> None:
    replacements, lost = A1_CASES[case]
    verdicts = grading.check_a1({**_solutions(A1), **replacements}, _points(A1))
    assert _scores(verdicts) == _expected(A1, lost), {k: v.failures for k, v in verdicts.items()}


def test_a1_untouched_and_partial_work() -> None:
    assert sum(_scores(grading.check_a1(_stubs(A1), _points(A1))).values()) == 0
    partial = grading.check_a1({**_stubs(A1), "dilated_conv2d": _solutions(A1)["dilated_conv2d"]}, _points(A1))
    assert _scores(partial) == _expected(A1, {"test_effective_kernel_size", "test_receptive_field", "test_influence_mask"})


def test_feedback_names_the_kind_of_input_but_not_the_inputs() -> None:
    verdicts = grading.check_a1({**_solutions(A1), "dilated_conv2d": LYING_ARRAY}, _points(A1))
    text = grading.feedback_text(verdicts["test_dilated_conv2d_values"])
    assert "0 / 3 points" in text and "random odd-size images" in text and "wrong on 15 of 15" in text
    assert not re.search(r"\d+\.\d{3,}", text), text  # no input or reference value


# --- A2 --------------------------------------------------------------------------------------------------------------

A2_CASES = {
    "instructor": ({}, set()),
    "alt-cumsum": (A2_ALTERNATIVES, set()),
    "alt-loops": (A2_LOOPS, set()),
    "wrong-floor-end": ({"adaptive_bin_edges": "def adaptive_bin_edges(length, bins):\n"
                                               "    return [(i * length // bins, (i + 1) * length // bins) for i in range(bins)]"},
                        {"test_adaptive_bin_edges"}),
    "wrong-sum-not-mean": ({"adaptive_avg_pool": A2_LOOPS["adaptive_avg_pool"].replace(" / ((bottom - top) * (right - left))", "")},
                           {"test_adaptive_avg_pool_values"}),
    "wrong-input-last": ({"pyramid_pooling": A2_LOOPS["pyramid_pooling"].replace(
        "outputs = [np.asarray(features)]", "outputs = []").replace(
        "return np.concatenate(outputs, axis=3)", "return np.concatenate(outputs + [np.asarray(features)], axis=3)")},
        {"test_pyramid_pooling_values"}),
    "exploit-library": ({
        "adaptive_bin_edges": "def adaptive_bin_edges(length, bins):\n    return layers.adaptive_bin_edges(length, bins)",
        "adaptive_avg_pool": "def adaptive_avg_pool(features, bins):\n"
                             "    return keras.ops.convert_to_numpy(keras.layers.AdaptiveAveragePooling2D(bins)(features))",
        "pyramid_pooling": LIBRARY_IN_KERAS_SANDBOX}, set(grading.test_points(_source(A2)))),
    "exploit-patch-in-answer": ({"pyramid_pooling": PATCH + A2_PPM_ZEROS}, {"test_pyramid_pooling_values"}),
}


@pytest.mark.parametrize("case", list(A2_CASES))
def test_a2_case_scores_exactly_what_it_earned(case: str) -> None:
    replacements, lost = A2_CASES[case]
    verdicts = grading.check_a2({**_solutions(A2), **replacements}, _points(A2))
    assert _scores(verdicts) == _expected(A2, lost), {k: v.failures for k, v in verdicts.items()}


def test_a2_untouched_scores_nothing() -> None:
    assert sum(_scores(grading.check_a2(_stubs(A2), _points(A2))).values()) == 0


# --- A3 Parts 1-2 and A3 Part 3 / A4 from saved files -------------------------------------------------------------

A3_FUNCTION_TESTS = {"test_predict_ids", "test_mean_iou_perfect", "test_mean_iou_values"}
A3_CASES = {
    "instructor": ({}, set()),
    "alt-bincount": (A3_ALTERNATIVES, set()),
    "alt-loops": (A3_LOOPS, set()),
    "wrong-per-image-miou": ({"mean_iou": A3_PER_IMAGE}, {"test_mean_iou_values"}),
    "wrong-all-classes": ({"mean_iou": A3_ALL_CLASSES}, {"test_mean_iou_values"}),
    "wrong-aux-output": ({"predict_ids": A3_AUX}, {"test_predict_ids"}),
    "exploit-library": ({
        "predict_ids": "def predict_ids(model, images):\n    return reference_logits(model, images).argmax(-1).astype(np.uint8)",
        "mean_iou": "from pspnet_lib import metrics as m\n\ndef mean_iou(labels, predictions, num_classes=19):\n"
                    "    return m.mean_iou(m.confusion_matrix(labels, predictions, num_classes))"}, A3_FUNCTION_TESTS),
    "exploit-lying-float": ({"mean_iou": LYING_FLOAT}, {"test_mean_iou_perfect", "test_mean_iou_values"}),
}


@pytest.mark.parametrize("case", list(A3_CASES))
def test_a3_functions_score_exactly_what_they_earned(case: str, tmp_path: Path) -> None:
    replacements, lost = A3_CASES[case]
    verdicts = grading.check_a3({**_solutions(A3), **replacements}, _points(A3), tmp_path)
    scores = {k: v for k, v in _scores(verdicts).items() if k in A3_FUNCTION_TESTS}
    assert scores == {k: v for k, v in _expected(A3, lost).items() if k in A3_FUNCTION_TESTS}, {
        k: v.failures for k, v in verdicts.items()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """One small PSPNet trained with A3's fast recipe, its weights after two stages of training, and an untrained one."""
    import keras

    from pspnet_lib import data, models, training

    folder = tmp_path_factory.mktemp("trained")
    size, _ = grading.graded_sizes()
    root = data.ensure_synthetic_dataset(seed=0, num_train=200, num_val=50)
    keras.utils.set_random_seed(0)
    train_data = data.make_dataset(root, "train", image_size=size, batch_size=8, augment=True, shuffle=True, limit=32)
    model = models.build_pspnet(data.NUM_CLASSES, backbone="small")
    model.save_weights(folder / "untrained.weights.h5")
    training.compile_for_training(model, training.build_optimizer("adam", total_steps=6 * 4))
    model.fit(training.training_targets(train_data, model), epochs=5, verbose=0)
    model.save_weights(folder / "trained.weights.h5")
    model.fit(training.training_targets(train_data, model), epochs=1, verbose=0)
    model.save_weights(folder / "trained_more.weights.h5")
    # A run that collapsed to the majority class (as a short run may): the classifier predicts road everywhere.
    classifier = model.get_layer("head_classifier")
    kernel, bias = classifier.get_weights()
    majority = np.bincount(_labels()[_labels() != 255].ravel()).argmax()
    classifier.set_weights([np.zeros_like(kernel), np.eye(len(bias), dtype=bias.dtype)[majority] * 10])
    model.save_weights(folder / "collapsed.weights.h5")
    return {name: folder / f"{name}.weights.h5" for name in ("untrained", "trained", "trained_more", "collapsed")}


def _predict(weights: Path, **kwargs) -> np.ndarray:
    """The class ids the model with `weights` predicts for the scored validation images."""
    size, limit = grading.graded_sizes()
    model, problem = grading.load_course_model(weights, backbone="small", **kwargs)
    assert not problem, problem
    return grading.predict_main(model, grading.scored_split(size, limit)[0]).argmax(-1).astype(np.uint8)


def _a3_files(folder: Path, weights: Path | None, predictions=None, reported=None) -> Path:
    """A folder holding what A3's notebook saves."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if weights is not None:
        shutil.copy(weights, folder / grading.A3_MODEL)
        predictions = _predict(weights) if predictions is None else predictions
    if predictions is not None:
        np.savez_compressed(folder / grading.A3_PREDICTIONS, predictions=predictions)
        size, limit = grading.graded_sizes()
        labels = grading.scored_split(size, limit)[1]
        miou = grading._miou(labels, predictions) if reported is None else reported
        np.savez(folder / grading.A3_REPORT, reported_miou=float(miou))
    return folder


def _labels() -> np.ndarray:
    size, limit = grading.graded_sizes()
    return grading.scored_split(size, limit)[1]


A3_PART3 = set(grading.A3_PART3)


@pytest.mark.slow
@pytest.mark.parametrize(("case", "lost"), [
    ("honest", set()),
    ("misreported", {"test_reported_miou"}),
    ("untrained", A3_PART3),
    ("untrained-labels-as-predictions", A3_PART3),
    ("untrained-then-labels", A3_PART3),  # the untrained model's first two predictions, then the labels themselves
    ("nothing-saved", A3_PART3),
    ("other-network", A3_PART3),
])
def test_a3_part3_is_scored_from_the_saved_model(trained: dict, tmp_path: Path, case: str, lost: set) -> None:
    from pspnet_lib import data, models

    if case == "honest":
        folder = _a3_files(tmp_path, trained["trained"])
    elif case == "misreported":
        folder = _a3_files(tmp_path, trained["trained"], reported=grading._miou(_labels(), _predict(trained["trained"])) + 0.1)
    elif case == "untrained":
        folder = _a3_files(tmp_path, trained["untrained"])
    elif case == "untrained-labels-as-predictions":
        labels = _labels()
        folder = _a3_files(tmp_path, trained["untrained"], predictions=np.where(labels == 255, 0, labels).astype(np.uint8))
    elif case == "untrained-then-labels":
        labels = np.where(_labels() == 255, 0, _labels())
        mixed = np.concatenate([_predict(trained["untrained"])[:2], labels[2:]]).astype(np.uint8)
        folder = _a3_files(tmp_path, trained["untrained"], predictions=mixed)
    elif case == "nothing-saved":
        folder = _a3_files(tmp_path, None)
    else:  # a trained network of another architecture: its weights do not fit the course's small PSPNet
        other = models.build_pspnet(data.NUM_CLASSES, backbone="small", aux_head=False)
        other.save_weights(tmp_path / "other.weights.h5")
        folder = _a3_files(tmp_path / "files", None, predictions=_predict(trained["trained"]))
        (tmp_path / "other.weights.h5").rename(folder / grading.A3_MODEL)
    verdicts = grading.check_trained_a3(_points(A3), folder)
    expected = {k: v for k, v in _expected(A3, lost).items() if k in A3_PART3}
    assert _scores(verdicts) == expected, {k: v.failures for k, v in verdicts.items()}


def _design(factor: str, baseline: dict, variant: dict, seeds=(0, 1)) -> dict:
    return {"question": "What does it change?", "factor": factor, "seeds": list(seeds), "baseline": baseline,
            "variant": variant, "prediction": "The baseline wins by about two mIoU points because its head sees more context."}


SMALL = {"backbone": "small"}


def _a4_files(folder: Path, design: dict, runs: dict, report_offset: float = 0.0, zero_predictions: bool = False) -> Path:
    """A folder holding what A4's notebook saves: the design, each run's weights, predictions and reported mIoUs."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / grading.A4_DESIGN, design=json.dumps(design))
    arrays, results = {}, {"baseline": [], "variant": []}
    for (arm, seed), weights in runs.items():
        shutil.copy(weights, folder / grading.a4_weights_file(arm, seed))
        kwargs = {k: v for k, v in design[arm].items() if k != "backbone"}
        ids = _predict(weights, **kwargs) if not zero_predictions else np.zeros_like(_labels())
        arrays[f"{arm}_seed{seed}"] = ids
        results[arm].append(grading._miou(_labels(), ids) + report_offset)
    np.savez_compressed(folder / grading.A4_PREDICTIONS, **arrays)
    np.savez(folder / grading.A4_RESULTS, results=json.dumps(results))
    return folder


def _runs(trained: dict, seeds=(0, 1), variant: str | None = None) -> dict:
    """Weights of genuinely trained models for each arm and seed (the two stages of one training)."""
    stages = [trained["trained"], trained["trained_more"]]
    runs = {}
    for index, seed in enumerate(seeds):
        runs["baseline", seed] = stages[index % 2]
        runs["variant", seed] = trained[variant] if variant in trained else stages[(index + 1) % 2]
    if variant == "first-collapsed":
        runs["variant", seeds[0]] = trained["collapsed"]
    return runs


DESIGN, RESULTS = "test_ablation_design", "test_ablation_results"
A4_CASES = {
    "instructor": (_design("pooling", {**SMALL, "pooling": "avg"}, {**SMALL, "pooling": "max"}), {}, set()),
    "alt-dropout-three-seeds": (_design("dropout", {**SMALL, "dropout": 0.1}, {**SMALL, "dropout": 0.5}, (3, 4, 5)), {}, set()),
    "alt-batch-norm-momentum": (_design("batch_norm_momentum", SMALL, {**SMALL, "batch_norm_momentum": 0.5}), {}, set()),
    "wrong-two-factors": (_design("pooling", {**SMALL, "pooling": "avg"}, {**SMALL, "pooling": "max", "dropout": 0.3}),
                          {}, {DESIGN}),
    "wrong-bins": (_design("bins", SMALL, {**SMALL, "bins": [1, 2]}), {"skip_runs": True}, {DESIGN, RESULTS}),
    "wrong-one-seed": (_design("pooling", SMALL, {**SMALL, "pooling": "max"}, (0,)), {}, {DESIGN, RESULTS}),
    "wrong-misreported": (_design("dropout", SMALL, {**SMALL, "dropout": 0.5}), {"report_offset": 0.05}, {RESULTS}),
    "exploit-null-default": (_design("dropout", SMALL, {**SMALL, "dropout": 0.1}), {}, {DESIGN, RESULTS}),
    "exploit-null-tiny-change": (_design("dropout", {**SMALL, "dropout": 0.1}, {**SMALL, "dropout": 0.1000001}), {},
                                 {DESIGN, RESULTS}),
    "exploit-null-name": (_design("name", SMALL, {**SMALL, "name": "variant"}), {}, {DESIGN, RESULTS}),
    "exploit-null-list": (_design("bins", {**SMALL, "bins": (1, 2, 3, 6)}, {**SMALL, "bins": [1, 2, 3, 6]}), {},
                          {DESIGN, RESULTS}),
    "exploit-null-reduction": (_design("reduction_filters", SMALL, {**SMALL, "reduction_filters": None}), {},
                               {DESIGN, RESULTS}),
    # A short run may collapse to the majority class: one such seed keeps the points, an arm made only of them does not.
    "alt-one-collapsed-run": (_design("dropout", SMALL, {**SMALL, "dropout": 0.5}), {"variant": "first-collapsed"}, set()),
    "exploit-constant-arm": (_design("dropout", SMALL, {**SMALL, "dropout": 0.5}), {"variant": "collapsed"}, {RESULTS}),
    "exploit-untrained-variant": (_design("dropout", SMALL, {**SMALL, "dropout": 0.5}), {"variant": "untrained"}, {RESULTS}),
    "exploit-one-model-for-both-arms": (_design("dropout", SMALL, {**SMALL, "dropout": 0.5}), {"variant": "trained",
                                                                                               "same": True}, {RESULTS}),
    "exploit-zero-predictions": (_design("dropout", SMALL, {**SMALL, "dropout": 0.5}), {"zero_predictions": True}, {RESULTS}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(A4_CASES))
def test_a4_case_scores_exactly_what_it_earned(trained: dict, tmp_path: Path, case: str) -> None:
    design, options, lost = A4_CASES[case]
    design = json.loads(json.dumps(design))  # as the notebook saves it: plain JSON data
    runs = {} if options.get("skip_runs") else _runs(trained, design["seeds"], options.get("variant"))
    if options.get("same"):
        runs = {(arm, seed): runs["baseline", seed] for arm, seed in runs}
    folder = _a4_files(tmp_path, design, runs, options.get("report_offset", 0.0), options.get("zero_predictions", False))
    verdicts = grading.check_a4(_points(A4), folder)
    assert _scores(verdicts) == _expected(A4, lost), {k: v.failures for k, v in verdicts.items()}


def test_a4_design_that_is_not_plain_data_scores_nothing(tmp_path: Path) -> None:
    verdicts = grading.check_a4(_points(A4), tmp_path)  # untouched, or the notebook could not write a4_design.npz
    assert _scores(verdicts) == _expected(A4, {DESIGN, RESULTS})


def test_a3_untouched_scores_nothing(tmp_path: Path) -> None:
    verdicts = grading.check_a3(_stubs(A3), _points(A3), tmp_path)  # the stubs raise; the notebook saved nothing
    assert _scores(verdicts) == _expected(A3, set(_points(A3))), {k: v.failures for k, v in verdicts.items()}


def test_every_assignment_has_two_alternatives_three_mistakes_and_exploits() -> None:
    for name, cases in ((A1, A1_CASES), (A2, A2_CASES), (A3, A3_CASES), (A4, A4_CASES)):
        assert sum(case.startswith("alt-") for case in cases) >= 2, name
        assert sum(case.startswith("wrong-") for case in cases) >= 3, name
        assert sum(case.startswith("exploit-") for case in cases) >= 2, name
