"""Tests of the tests, in-process: every case is submitted to the trusted checker (assignments/grading.py) and its
points are asserted, without nbgrader. Answers run in the checker's sandboxes exactly as when grading; A3 Part 3
and A4 are scored from files like those their notebooks save, all made from one model trained here.

tests/test_assignments.py runs a representative set through nbgrader (`course.py grade`)."""

from __future__ import annotations

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
    PATCH,
)

# Grading, as `make check` leaves it out: every case runs the checker's sandboxes (fresh interpreters, Keras in A2/A3).
pytestmark = pytest.mark.slow
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


def test_a3_untouched_scores_nothing(tmp_path: Path) -> None:
    verdicts = grading.check_a3(_stubs(A3), _points(A3), tmp_path)  # the stubs raise; the notebook saved nothing
    assert _scores(verdicts) == _expected(A3, set(_points(A3))), {k: v.failures for k, v in verdicts.items()}
