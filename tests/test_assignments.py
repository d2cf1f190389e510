"""Classroom assignments: the released versions hide solutions and hidden tests, and `course.py grade` gives each
submission exactly the marks it earned, stopping a runaway submission without stopping the others."""

from __future__ import annotations

import csv
import html
import importlib.util
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "assignments"
GRADING_TIMEOUT = 60  # seconds per cell for A1 and A2: what the looping submission costs
TRAINING_TIMEOUT = 900  # seconds per cell for A3 and A4, whose fast-mode training takes seconds on an idle CPU
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN_REGION = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
MARKER_LINE = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$\n?", re.M)

A1 = "a1_dilated_convolutions"
BROKEN_A1 = {
    "dilated_conv2d": "def dilated_conv2d(image, kernel, dilation):\n    raise ValueError('a student bug')",
    "influence_mask": "def influence_mask(dilations, kernel_size=3):\n    while True:\n        pass",
}


def _load_course_module():
    """assignments/course.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("assignments_course", COURSE / "course.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


course = _load_course_module()


def _notebook_path(course_dir: Path, folder: str, name: str) -> Path:
    """The notebook of assignment `name` in `folder` (source or release)."""
    return course_dir / folder / name / f"{name}.ipynb"


def _graded_cells(notebook) -> dict[str, nbformat.NotebookNode]:
    """Cells carrying nbgrader metadata, by grade_id."""
    return {cell.metadata.nbgrader["grade_id"]: cell for cell in notebook.cells if "nbgrader" in cell.metadata}


def _points(name: str) -> dict[str, float]:
    """Points of each graded cell of assignment `name`, read from its source notebook."""
    cells = _graded_cells(nbformat.read(_notebook_path(COURSE, "source", name), as_version=4))
    return {grade_id: cell.metadata.nbgrader["points"] for grade_id, cell in cells.items() if cell.metadata.nbgrader["grade"]}


def _region_lines(name: str, region: re.Pattern) -> set[str]:
    """Non-trivial lines found only inside `region` blocks of the source notebook of `name` (nowhere else in it)."""
    text = _code_text(_notebook_path(COURSE, "source", name))
    inside = {line.strip() for block in region.findall(text) for line in block.splitlines()}
    outside = {line.strip() for line in region.sub("", text).splitlines()}
    return {line for line in inside - outside if len(line) > 12 and not line.startswith("#")}


def _code_text(path: Path) -> str:
    """All code cells of the notebook at `path`, joined."""
    return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")


def _release_text(name: str) -> str:
    """All code of the committed student version of `name`."""
    return _code_text(_notebook_path(COURSE, "release", name))


NAMES = course.assignment_names(COURSE)


def test_the_four_assignments_are_authored_and_released() -> None:
    assert [name[:2] for name in NAMES] == ["a1", "a2", "a3", "a4"]
    for name in NAMES:
        assert _notebook_path(COURSE, "release", name).is_file(), f"{name} has no student version: run make assignments"


@pytest.mark.parametrize("name", NAMES)
def test_released_version_holds_no_solution_code(name: str) -> None:
    released = _release_text(name)
    solution_lines = _region_lines(name, SOLUTION_REGION)
    assert solution_lines, f"{name} has no solution region"
    assert "BEGIN SOLUTION" not in released
    assert not [line for line in solution_lines if line in released]


@pytest.mark.parametrize("name", NAMES)
def test_released_version_holds_no_hidden_tests(name: str) -> None:
    released = _release_text(name)
    assert "HIDDEN TESTS" not in released
    assert not [line for line in _region_lines(name, HIDDEN_REGION) if line in released]


@pytest.mark.parametrize("name", NAMES)
def test_every_solution_cell_becomes_a_stub_and_every_test_cell_is_locked(name: str) -> None:
    cells = _graded_cells(nbformat.read(_notebook_path(COURSE, "release", name), as_version=4))
    for grade_id, cell in cells.items():
        meta = cell.metadata.nbgrader
        if meta["solution"]:
            if cell.cell_type == "code":
                assert "raise NotImplementedError()" in cell.source, f"{name}/{grade_id} is not a stub"
            else:
                assert cell.source == "YOUR ANSWER HERE", f"{name}/{grade_id}: the sample answer leaked"
        if meta["grade"] and not meta["solution"]:
            assert meta["locked"] and meta["points"] > 0, f"{name}/{grade_id} must be locked and worth points"


def test_release_rejects_an_unknown_assignment_by_name() -> None:
    with pytest.raises(ValueError, match="a9_missing"):
        course.release(COURSE, ["a9_missing"])


def test_a_course_without_source_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="source"):
        course.assignment_names(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Tests of the tests. One grading run, shared, in a temporary copy of the course: the instructor's solutions, typical
# mistakes (exactly their part's points lost, once), and exploits that try to fool the grader (zero for the part they
# touch). Each case names the test cells that must pass; every other test cell must score zero. The answers below
# (alternative solutions, mistakes) are also submitted straight to the checker by tests/test_grader_checks.py.

A2, A3, A4 = "a2_pyramid_pooling", "a3_train_pspnet", "a4_ablation"
ALL = None  # every test cell of the assignment passes

A1_ALTERNATIVES = {
    "effective_kernel_size": (
        "def effective_kernel_size(kernel_size, dilation):\n"
        "    return int(np.ptp(np.arange(kernel_size) * dilation)) + 1"),
    "dilated_conv2d": (
        "def dilated_conv2d(image, kernel, dilation):\n"
        "    span = effective_kernel_size(kernel.shape[0], dilation)\n"
        "    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(image, float), (span, span))\n"
        "    return np.einsum('ijab,ab->ij', windows[:, :, ::dilation, ::dilation], kernel)"),
    "receptive_field": (
        "def receptive_field(layer_specs):\n"
        "    field = 1\n"
        "    for index, (k, s, d) in enumerate(layer_specs):\n"
        "        jump = int(np.prod([stride for _, stride, _ in layer_specs[:index]]))\n"
        "        field += (k - 1) * d * jump\n"
        "    return field"),
    "influence_mask": (
        "def influence_mask(dilations, kernel_size=3):\n"
        "    offsets = {0}\n"
        "    for d in dilations:\n"
        "        offsets = {o + t * d for o in offsets for t in range(kernel_size)}\n"
        "    line = np.zeros(1 + sum(d * (kernel_size - 1) for d in dilations), dtype=bool)\n"
        "    line[sorted(offsets)] = True\n"
        "    return np.outer(line, line)"),
}
A1_LOOPS = {
    "effective_kernel_size": "def effective_kernel_size(kernel_size, dilation):\n    return (kernel_size - 1) * dilation + 1",
    "dilated_conv2d": (
        "def dilated_conv2d(image, kernel, dilation):\n"
        "    k = len(kernel)\n"
        "    h, w = image.shape[0] - dilation * (k - 1), image.shape[1] - dilation * (k - 1)\n"
        "    out = np.zeros((h, w))\n"
        "    for i in range(h):\n"
        "        for j in range(w):\n"
        "            for a in range(k):\n"
        "                for b in range(k):\n"
        "                    out[i, j] += kernel[a, b] * image[i + a * dilation, j + b * dilation]\n"
        "    return out"),
    "receptive_field": (
        "def receptive_field(layer_specs):\n"
        "    field = 1\n"
        "    for k, s, d in reversed(layer_specs):\n"
        "        field = (field - 1) * s + d * (k - 1) + 1\n"
        "    return field"),
    "influence_mask": (
        "def influence_mask(dilations, kernel_size=3):\n"
        "    size = 1 + sum(d * (kernel_size - 1) for d in dilations)\n"
        "    reach = np.zeros((size, size), dtype=bool)\n"
        "    reach[0, 0] = True\n"
        "    for d in dilations:\n"
        "        grown = np.zeros_like(reach)\n"
        "        for i, j in zip(*np.nonzero(reach)):\n"
        "            for a in range(kernel_size):\n"
        "                for b in range(kernel_size):\n"
        "                    grown[i + a * d, j + b * d] = True\n"
        "        reach = grown\n"
        "    return reach"),
}
A1_ZEROS = ("def dilated_conv2d(image, kernel, dilation):\n"
            "    span = dilation * (kernel.shape[0] - 1) + 1\n"
            "    return np.zeros((image.shape[0] - span + 1, image.shape[1] - span + 1))")
PATCH = "np.testing.assert_allclose = lambda *args, **kwargs: None\n"

A2_ALTERNATIVES = {
    "adaptive_bin_edges": (
        "def adaptive_bin_edges(length, bins):\n"
        "    return [(i * length // bins, ((i + 1) * length + bins - 1) // bins) for i in range(bins)]"),
    "adaptive_avg_pool": (
        "def adaptive_avg_pool(features, bins):\n"
        "    x = np.asarray(features, dtype=np.float64)\n"
        "    table = np.pad(x.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0), (0, 0)))\n"
        "    out = np.empty((x.shape[0], bins, bins, x.shape[3]))\n"
        "    for i, (top, bottom) in enumerate(adaptive_bin_edges(x.shape[1], bins)):\n"
        "        for j, (left, right) in enumerate(adaptive_bin_edges(x.shape[2], bins)):\n"
        "            total = table[:, bottom, right] - table[:, top, right] - table[:, bottom, left] + table[:, top, left]\n"
        "            out[:, i, j] = total / ((bottom - top) * (right - left))\n"
        "    return out.astype(np.float32)"),
    "pyramid_pooling": (
        "def pyramid_pooling(features, bins, branch_transforms):\n"
        "    size = features.shape[1:3]\n"
        "    branches = [keras.ops.convert_to_numpy(keras.ops.image.resize(\n"
        "        np.asarray(t(adaptive_avg_pool(features, b))), size, interpolation='bilinear'))\n"
        "        for b, t in zip(bins, branch_transforms)]\n"
        "    return np.concatenate([np.asarray(features)] + branches, axis=-1)"),
}
A2_LOOPS = {
    "adaptive_bin_edges": (
        "def adaptive_bin_edges(length, bins):\n"
        "    edges = []\n"
        "    for i in range(bins):\n"
        "        q, r = divmod((i + 1) * length, bins)\n"
        "        edges.append(((i * length) // bins, q + (r > 0)))\n"
        "    return edges"),
    "adaptive_avg_pool": (
        "def adaptive_avg_pool(features, bins):\n"
        "    features = np.asarray(features)\n"
        "    out = np.zeros((features.shape[0], bins, bins, features.shape[3]), dtype=features.dtype)\n"
        "    for i, (top, bottom) in enumerate(adaptive_bin_edges(features.shape[1], bins)):\n"
        "        for j, (left, right) in enumerate(adaptive_bin_edges(features.shape[2], bins)):\n"
        "            window = features[:, top:bottom, left:right]\n"
        "            out[:, i, j] = window.sum(axis=(1, 2)) / ((bottom - top) * (right - left))\n"
        "    return out"),
    "pyramid_pooling": (
        "def pyramid_pooling(features, bins, branch_transforms):\n"
        "    outputs = [np.asarray(features)]\n"
        "    for b, transform in zip(bins, branch_transforms):\n"
        "        pooled = transform(adaptive_avg_pool(features, b))\n"
        "        up = keras.ops.image.resize(pooled, features.shape[1:3], interpolation='bilinear')\n"
        "        outputs.append(keras.ops.convert_to_numpy(up))\n"
        "    return np.concatenate(outputs, axis=3)"),
}
A2_PPM_ZEROS = ("def pyramid_pooling(features, bins, branch_transforms):\n"
                "    b, h, w, c = features.shape\n"
                "    return np.zeros((b, h, w, c + c // len(bins) * len(bins)), dtype=np.float32)")

A3_ALTERNATIVES = {
    "predict_ids": (
        "def predict_ids(model, images):\n"
        "    outputs = model.predict(images, batch_size=BATCH_SIZE, verbose=0)\n"
        "    main = outputs[0] if isinstance(outputs, (list, tuple)) else outputs\n"
        "    return np.asarray(main).argmax(-1).astype(np.uint8)"),
    "mean_iou": (
        "def mean_iou(labels, predictions, num_classes=data.NUM_CLASSES):\n"
        "    labels, predictions = np.ravel(labels).astype(np.int64), np.ravel(predictions).astype(np.int64)\n"
        "    keep = labels != data.IGNORE_LABEL\n"
        "    counts = np.bincount(labels[keep] * num_classes + predictions[keep], minlength=num_classes ** 2)\n"
        "    confusion = counts.reshape(num_classes, num_classes)\n"
        "    union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)\n"
        "    return float(np.mean(np.diag(confusion)[union > 0] / union[union > 0]))"),
}
A3_LOOPS = {
    "predict_ids": (
        "def predict_ids(model, images):\n"
        "    ids = np.zeros(images.shape[:3], dtype=np.uint8)\n"
        "    for i in range(len(images)):\n"
        "        outputs = model(images[i : i + 1], training=False)\n"
        "        main = outputs[0] if isinstance(outputs, list) else outputs\n"
        "        ids[i] = np.argmax(keras.ops.convert_to_numpy(main)[0], axis=-1)\n"
        "    return ids"),
    "mean_iou": (
        "def mean_iou(labels, predictions, num_classes=data.NUM_CLASSES):\n"
        "    labels, predictions = np.asarray(labels), np.asarray(predictions)\n"
        "    valid = labels != data.IGNORE_LABEL\n"
        "    ious = []\n"
        "    for c in set(np.unique(labels[valid])) | set(np.unique(predictions[valid])):\n"
        "        inter = np.sum((labels == c) & (predictions == c) & valid)\n"
        "        union = np.sum(((labels == c) | (predictions == c)) & valid)\n"
        "        ious.append(inter / union)\n"
        "    return float(sum(ious) / len(ious))"),
}
A3_PER_IMAGE = ("def mean_iou(labels, predictions, num_classes=data.NUM_CLASSES):\n"
                "    scores = []\n"
                "    for y, p in zip(np.asarray(labels), np.asarray(predictions)):\n"
                "        keep = y != data.IGNORE_LABEL\n"
                "        ious = [np.sum((y[keep] == c) & (p[keep] == c)) / np.sum((y[keep] == c) | (p[keep] == c))\n"
                "                for c in range(num_classes) if np.any((y[keep] == c) | (p[keep] == c))]\n"
                "        scores.append(np.mean(ious))\n"
                "    return float(np.mean(scores))")
A3_ALL_CLASSES = ("def mean_iou(labels, predictions, num_classes=data.NUM_CLASSES):\n"
                  "    labels, predictions = np.ravel(labels), np.ravel(predictions)\n"
                  "    keep = labels != data.IGNORE_LABEL\n"
                  "    labels, predictions = labels[keep], predictions[keep]\n"
                  "    ious = [np.sum((labels == c) & (predictions == c)) / max(1, np.sum((labels == c) | (predictions == c)))\n"
                  "            for c in range(num_classes)]\n"
                  "    return float(np.mean(ious))")
A3_AUX = ("def predict_ids(model, images):\n"
          "    outputs = model(images, training=False)\n"
          "    last = outputs[-1] if isinstance(outputs, (list, tuple)) else outputs\n"
          "    return np.argmax(keras.ops.convert_to_numpy(last), axis=-1).astype(np.uint8)")
A3_ON_VAL = (
    "keras.utils.set_random_seed(0)\n"
    "train_data = data.make_dataset(DATA_ROOT, 'val', image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, augment=True,\n"
    "                               shuffle=True, limit=VAL_LIMIT)\n"
    "model = models.build_pspnet(data.NUM_CLASSES, backbone='small')\n"
    "training.compile_for_training(model, training.build_optimizer('adam', total_steps=EPOCHS))\n"
    "model.fit(training.training_targets(train_data, model), epochs=EPOCHS, verbose=2)\n"
    "predictions = predict_ids(model, val_images)\n"
    "np.savez_compressed(PREDICTIONS_FILE, predictions=predictions)\n"
    "reported_miou = mean_iou(val_labels, predictions)")
A3_ON_VAL_ARRAYS = A3_ON_VAL.replace(
    "data.make_dataset(DATA_ROOT, 'val', image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, augment=True,\n"
    "                               shuffle=True, limit=VAL_LIMIT)",
    "tf.data.Dataset.from_tensor_slices((val_images, val_labels)).batch(BATCH_SIZE)").replace(
    "keras.utils.set_random_seed(0)\n", "import tensorflow as tf\n\nkeras.utils.set_random_seed(0)\n")
A3_PATCHED_METRIC = ("model = models.build_pspnet(data.NUM_CLASSES, backbone='small')\n"
                     "predictions = np.zeros(val_labels.shape, np.uint8)\n"
                     "np.savez_compressed(PREDICTIONS_FILE, predictions=predictions)\n"
                     "metrics.mean_iou = lambda confusion: 0.9\n"
                     "reported_miou = 0.9")


def _a4_design(factor: str, baseline: dict, variant: dict, seeds=(0, 1), question: str = "What does it change?") -> str:
    """An ABLATION answer cell."""
    design = {"question": question, "factor": factor, "seeds": list(seeds), "baseline": baseline, "variant": variant,
              "prediction": "The baseline wins by about two mIoU points because its head sees more context."}
    return f"ABLATION = {design!r}"


A4_RUN_LOOP = ("results = {'baseline': [], 'variant': []}\n"
               "arrays = {}\n"
               "for name in results:\n"
               "    for seed in ABLATION['seeds']:\n"
               "        ids = predict_ids(train_variant(ABLATION[name], seed), val_images)\n"
               "        arrays[name + '_seed' + str(seed)] = ids\n"
               "        results[name].append(metrics.mean_iou(metrics.confusion_matrix(val_labels, ids)))\n"
               "np.savez_compressed(PREDICTIONS_FILE, **arrays)")
A4_ZEROS = ("results = {'baseline': [], 'variant': []}\n"
            "arrays = {}\n"
            "for name in results:\n"
            "    for seed in ABLATION['seeds']:\n"
            "        arrays[f'{name}_seed{seed}'] = np.zeros(val_labels.shape, np.uint8)\n"
            "        results[name].append(metrics.mean_iou(metrics.confusion_matrix(val_labels, arrays[f'{name}_seed{seed}'])))\n"
            "np.savez_compressed(PREDICTIONS_FILE, **arrays)")
SMALL = {"backbone": "small"}


@dataclass(frozen=True)
class Case:
    """One submission: answer cells from the source (`solved`, None = all) or `replacements`, added cells,
    and the test cells that must pass (None = all); every other test cell must score zero."""

    assignment: str
    solved: frozenset[str] | None
    passes: frozenset[str] | None
    replacements: tuple[tuple[str, str], ...] = ()
    added_after: tuple[tuple[str, str], ...] = ()  # (grade_id, source of a new cell placed after that cell)
    stray_files: tuple[str, ...] = ()


def _case(assignment, solved=None, passes=ALL, replacements=None, added_after=None, stray_files=()):
    """A Case from plain arguments."""
    return Case(assignment, None if solved is None else frozenset(solved), None if passes is None else frozenset(passes),
                tuple((replacements or {}).items()), tuple((added_after or {}).items()), tuple(stray_files))


A1_TESTS = ["test_effective_kernel_size", "test_dilated_conv2d_shape", "test_dilated_conv2d_values",
            "test_receptive_field", "test_influence_mask"]
A2_TESTS = ["test_adaptive_bin_edges", "test_adaptive_avg_pool_shape", "test_adaptive_avg_pool_values",
            "test_pyramid_pooling_shape", "test_pyramid_pooling_values"]
A3_TESTS = ["test_predict_ids", "test_mean_iou_perfect", "test_mean_iou_values", "test_saved_predictions",
            "test_reported_miou", "test_model_learned", "test_fresh_images"]
A3_PARTS_1_2 = {"test_predict_ids", "test_mean_iou_perfect", "test_mean_iou_values"}


def _without(tests: list[str], *dropped: str) -> set[str]:
    """`tests` less `dropped`."""
    return set(tests) - set(dropped)


# Run through nbgrader (`course.py grade`): per assignment the instructor's solution, a mistake and an exploit;
# A1 also partial work (feedback, the CSV, regrading, late work) and broken work (a raising and a looping answer), and
# A3's exploit a stray prediction file. Every other case -- untouched notebooks, the alternative solutions, the other
# mistakes and exploits -- is submitted straight to the trusted checker in tests/test_grader_checks.py, which is what
# decides the points here too (each nbgrader run is a fresh TensorFlow kernel, most of `make test`'s time).
# The nbgrader cheats in one cell: IPython reached through the setup cell's `os` (no forbidden name), a hook that gives every
# later cell an `Out[]` number before its error, and a module-level `self.x = ...` patch in a cell of its own.
OUT_NUMBER_THEN_ERROR = (
    "shell = os.sys.modules['IPython'].get_ipython()\n"
    "shell.events.register('pre_run_cell', lambda info: shell.displayhook(1))\n\n"
    "def effective_kernel_size(kernel_size, dilation):\n    return 0")
MODULE_SELF_PATCH = "self = np.testing\nself.assert_allclose = lambda *args, **kwargs: None"
A4_UNTRAINED_REGISTRY = (
    "registry = os.sys._getframe(0).f_globals['_TRAINED_MODELS']\n"
    "arrays, results = {}, {'baseline': [], 'variant': []}\n"
    "for seed in ABLATION['seeds']:\n"
    "    for name in ('baseline', 'variant'):\n"
    "        keras.utils.set_random_seed(seed)\n"
    "        untrained = models.build_pspnet(data.NUM_CLASSES, **ABLATION[name])\n"
    "        registry[json.dumps(ABLATION[name], sort_keys=True, default=str), seed] = untrained\n"
    "        arrays[f'{name}_seed{seed}'] = predict_ids(untrained, val_images)\n"
    "        results[name].append(metrics.mean_iou(metrics.confusion_matrix(val_labels, arrays[f'{name}_seed{seed}'])))\n"
    "np.savez_compressed(PREDICTIONS_FILE, **arrays)")

CASES = {
    # --- A1
    ("instructor", A1): _case(A1),
    ("partial", A1): _case(A1, solved={"dilated_conv2d"}, passes={"test_dilated_conv2d_shape", "test_dilated_conv2d_values"}),
    ("broken", A1): _case(A1, solved={"effective_kernel_size", "receptive_field"},
                          passes={"test_effective_kernel_size", "test_receptive_field"}, replacements=BROKEN_A1),
    ("wrong-flipped-kernel", A1): _case(A1, passes=_without(A1_TESTS, "test_dilated_conv2d_values"), replacements={
        "dilated_conv2d": A1_ALTERNATIVES["dilated_conv2d"].replace("kernel)", "kernel[::-1, ::-1])")}),
    ("exploit-out-number-then-error", A1): _case(A1, solved=(), passes=(), replacements={
        "effective_kernel_size": OUT_NUMBER_THEN_ERROR}, added_after={"setup": MODULE_SELF_PATCH}),
    # --- A2
    ("instructor", A2): _case(A2),
    ("wrong-sum-not-mean", A2): _case(A2, passes=_without(A2_TESTS, "test_adaptive_avg_pool_values"), replacements={
        "adaptive_avg_pool": A2_LOOPS["adaptive_avg_pool"].replace(" / ((bottom - top) * (right - left))", "")}),
    ("exploit-library", A2): _case(A2, passes=(), replacements={
        "adaptive_bin_edges": "def adaptive_bin_edges(length, bins):\n    return layers.adaptive_bin_edges(length, bins)",
        "adaptive_avg_pool": "def adaptive_avg_pool(features, bins):\n"
                             "    return keras.ops.convert_to_numpy(keras.layers.AdaptiveAveragePooling2D(bins)(features))",
        "pyramid_pooling": "def pyramid_pooling(features, bins, branch_transforms):\n"
                           "    return check_against_library(features, bins)"}),
    # --- A3
    ("instructor", A3): _case(A3),
    ("wrong-aux-output", A3): _case(A3, solved={"mean_iou"}, passes={"test_mean_iou_perfect", "test_mean_iou_values"},
                                    replacements={"predict_ids": A3_AUX}),
    # The validation files are hidden from the kernel while grading: training on them fails, nothing is saved, and
    # the perfect-looking prediction file left beside the notebook is not copied in.
    ("exploit-train-on-val", A3): _case(A3, solved={"predict_ids", "mean_iou"}, passes=A3_PARTS_1_2,
                                        replacements={"train_and_report": A3_ON_VAL}, stray_files=("a3_predictions.npz",)),
    # --- A4
    ("instructor", A4): _case(A4),
    ("wrong-one-seed", A4): _case(A4, solved=(), passes=(), replacements={
        "ablation_design": _a4_design("pooling", SMALL, {**SMALL, "pooling": "max"}, seeds=(0,))}),
    ("exploit-untrained-registry", A4): _case(A4, solved={"ablation_design"}, passes={"test_ablation_design"},
                                              replacements={"ablation_run": A4_UNTRAINED_REGISTRY}),
}


def _submission(name: str, case: Case):
    """The student version of `name` with the case's answers and added cells."""
    solutions = _graded_cells(nbformat.read(_notebook_path(COURSE, "source", name), as_version=4))
    notebook = nbformat.read(_notebook_path(COURSE, "release", name), as_version=4)
    replacements, added = dict(case.replacements), dict(case.added_after)
    cells = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if grade_id in replacements:
            cell.source = replacements[grade_id]
        elif meta.get("solution") and cell.cell_type == "code" and (case.solved is None or grade_id in case.solved):
            cell.source = MARKER_LINE.sub("", solutions[grade_id].source)
        cells.append(cell)
        if grade_id in added:
            cells.append(nbformat.v4.new_code_cell(added[grade_id]))
    notebook.cells = cells
    return notebook


def _submit(course_dir: Path, student: str, name: str, notebook, stray_files=()) -> None:
    """Place `notebook` where nbgrader collects it: submitted/<student>/<name>/<name>.ipynb (plus stray files)."""
    folder = course_dir / "submitted" / student / name
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{name}.ipynb")
    for stray in stray_files:  # a perfect-looking prediction file from an earlier run
        np.savez_compressed(folder / stray, predictions=np.zeros((8, 64, 64), np.uint8))


def _course_copy(root: Path) -> Path:
    """A copy of the course directory without gradebook, submissions or results."""
    course_dir = root / "assignments"
    shutil.copytree(COURSE, course_dir, ignore=shutil.ignore_patterns(
        "gradebook.db", "submitted", "autograded", "feedback", "__pycache__", "*.npz", "grades.csv"))
    return course_dir


# Submissions nbgrader could not even open: scored 0 with the reason, while the others are graded.
UNUSABLE = {
    ("emptyfile", A1): (b"", "the file is empty"),
    ("garbled", A2): (b"{not json", "not a notebook (the file is not JSON)"),
}


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory, graded_city) -> Path:
    """A copy of the course with every case submitted, after `course.py grade` (A1 with a short cell limit)."""
    course_dir = _course_copy(tmp_path_factory.mktemp("course"))
    for (student, name), case in CASES.items():
        _submit(course_dir, student, name, _submission(name, case), case.stray_files)
    for (student, name), (content, _) in UNUSABLE.items():
        folder = course_dir / "submitted" / student / name
        folder.mkdir(parents=True)
        (folder / f"{name}.ipynb").write_bytes(content)
    slow = course.main(["--course-dir", str(course_dir), "grade", A3, A4, "--timeout", str(TRAINING_TIMEOUT)])
    quick = course.main(["--course-dir", str(course_dir), "grade", A1, A2, "--timeout", str(GRADING_TIMEOUT)])
    assert (quick, slow) == (0, 0), "course.py grade reported a failure"
    return course_dir


def _cell_scores(course_dir: Path, student: str, name: str) -> dict[str, float]:
    """Score of each autograded test cell of one submission, from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gradebook:
        notebook = gradebook.find_submission_notebook(name, name, student)
        return {grade.name: grade.score for grade in notebook.grades if grade.name.startswith("test_")}


@pytest.mark.slow
@pytest.mark.parametrize(("student", "name"), list(CASES), ids=[f"{n[:2]}-{s}" for s, n in CASES])
def test_each_submission_scores_exactly_the_parts_it_earned(graded_course: Path, student: str, name: str) -> None:
    case = CASES[student, name]
    points = {grade_id: p for grade_id, p in _points(name).items() if grade_id.startswith("test_")}
    expected = {grade_id: (p if case.passes is None or grade_id in case.passes else 0.0) for grade_id, p in points.items()}
    assert _cell_scores(graded_course, student, name) == expected


@pytest.mark.slow
def test_refused_cells_say_why_in_the_graded_notebook(graded_course: Path) -> None:
    graded = nbformat.read(graded_course / "autograded" / "exploit-out-number-then-error" / A1 / f"{A1}.ipynb", as_version=4)
    refused = [cell.source for cell in graded.cells if "The grader refused" in cell.source]
    assert len(refused) == 1 and "self.assert_allclose" in refused[0], refused  # the screen is a second line


@pytest.mark.slow
def test_scores_come_from_the_checker_not_from_the_kernels_outputs(graded_course: Path) -> None:
    graded = nbformat.read(graded_course / "autograded" / "exploit-out-number-then-error" / A1 / f"{A1}.ipynb", as_version=4)
    tests = [cell for cell in graded.cells if cell.metadata.get("nbgrader", {}).get("grade")
             and cell.cell_type == "code"]
    for cell in tests:  # the kernel's Out[] numbers and errors are gone; the checker's verdict replaces them
        assert [output.output_type for output in cell.outputs] == ["stream"], cell.outputs
        assert cell.outputs[0].text.startswith("Graded by the course's checker in its own process: 0 / ")


@pytest.mark.slow
def test_raising_and_looping_submission_is_stopped_and_graded(graded_course: Path) -> None:
    graded = nbformat.read(graded_course / "autograded" / "broken" / A1 / f"{A1}.ipynb", as_version=4)
    verdicts = {cell.metadata.nbgrader["grade_id"]: "".join(output.get("text", "") for output in cell.outputs)
                for cell in graded.cells if cell.cell_type == "code" and "nbgrader" in cell.metadata}
    assert "ValueError" in verdicts["test_dilated_conv2d_values"]
    assert "stopped after" in verdicts["test_influence_mask"], verdicts["test_influence_mask"]


@pytest.mark.slow
def test_written_answers_are_worth_points(graded_course: Path) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gradebook:
        for name in NAMES:
            notebook = gradebook.find_submission_notebook(name, name, "instructor")
            assert notebook.max_written_score >= 3, name  # an unchanged answer cell scores 0 without waiting


@pytest.mark.slow
def test_stray_prediction_files_are_not_graded(graded_course: Path) -> None:
    assert (graded_course / "submitted" / "exploit-train-on-val" / A3 / "a3_predictions.npz").is_file()
    assert not list((graded_course / "autograded" / "exploit-train-on-val" / A3).glob("*.npz"))


def _visible_text(page: str) -> str:
    """The text of an HTML page: tags dropped (syntax highlighting splits code into spans), entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.mark.slow
def test_feedback_per_submission_without_hidden_tests_and_the_csv_beside_it(graded_course: Path) -> None:
    hidden = {name: _region_lines(name, HIDDEN_REGION) for name in NAMES}
    for (student, name) in CASES:
        page = (graded_course / "feedback" / student / name / f"{name}.html").read_text()
        assert "<html" in page[:2000].lower()
        text = _visible_text(page)
        assert "### BEGIN HIDDEN TESTS" not in text
        assert "Graded by the course's checker in its own process" in text
        own = "\n".join(cell.source for cell in _submission(name, CASES[student, name]).cells)
        leaked = [line for line in hidden[name] if line in text and line not in own]
        assert not leaked, f"{student}/{name} feedback shows hidden tests: {leaked[:2]}"
    assert "Graded on the synthetic city: seed 0" in (graded_course / "feedback" / "instructor" / A3 / f"{A3}.html").read_text()
    assert course.GRADES_CSV.parent == Path(".") and not list((graded_course / "feedback").rglob("*.csv"))
    with open(graded_course / course.GRADES_CSV, newline="") as handle:
        rows = {(row["student_id"], row["assignment"]): float(row["raw_score"]) for row in csv.DictReader(handle)}
    assert set(CASES) <= set(rows)
    assert rows[("partial", A1)] == sum(_points(A1)[t] for t in CASES["partial", A1].passes)


@pytest.mark.slow
def test_an_unusable_submission_scores_zero_with_its_reason_and_grading_goes_on(graded_course: Path) -> None:
    with open(graded_course / course.GRADES_CSV, newline="") as handle:
        rows = {(row["student_id"], row["assignment"]): float(row["raw_score"]) for row in csv.DictReader(handle)}
    for (student, name), (_, reason) in UNUSABLE.items():
        page = _visible_text((graded_course / "feedback" / student / name / f"{name}.html").read_text())
        assert f"{name}.ipynb: {reason}" in page and "0 points" in page
        assert set(_cell_scores(graded_course, student, name).values()) == {0.0}
        assert rows[(student, name)] == 0.0
    assert rows[("instructor", A1)] == sum(_points(A1)[t] for t in _points(A1) if t.startswith("test_"))


@pytest.mark.slow
def test_regrading_one_student_keeps_manual_grades_and_applies_the_late_penalty(graded_course: Path) -> None:
    from nbgrader.api import Gradebook

    database = f"sqlite:///{graded_course / 'gradebook.db'}"
    with Gradebook(database) as gradebook:
        written = gradebook.find_grade("gridding_question", A1, A1, "partial")
        written.manual_score = 2.0
        gradebook.db.commit()
    (graded_course / "submitted" / "partial" / A1 / "timestamp.txt").write_text("2026-06-02 18:00:00 UTC")
    status = course.main(["--course-dir", str(graded_course), "grade", A1, "--student", "partial",
                          "--timeout", str(GRADING_TIMEOUT), "--due", "2026-06-01 17:00:00 UTC"])
    assert status == 0
    with Gradebook(database) as gradebook:  # the regraded student's manual grade survives its new autograde
        assert gradebook.find_grade("gridding_question", A1, A1, "partial").manual_score == 2.0
        score = sum(_points(A1)[t] for t in CASES["partial", A1].passes) + 2.0  # autograded and manual points
        # 25 hours late: two started days at 10 % each of the whole score
        assert gradebook.find_submission(A1, "partial").late_submission_penalty == pytest.approx(score * 0.2)


@pytest.mark.slow
def test_committed_release_is_what_the_script_generates_from_source(tmp_path: Path) -> None:
    course_dir = _course_copy(tmp_path)
    course.release(course_dir)
    for name in NAMES:
        regenerated = nbformat.read(_notebook_path(course_dir, "release", name), as_version=4)
        committed = nbformat.read(_notebook_path(COURSE, "release", name), as_version=4)
        assert regenerated == committed, f"{name}: release/ is stale, run make assignments"


def test_collect_unpacks_an_lms_download_of_zips(tmp_path: Path) -> None:
    course_dir = _course_copy(tmp_path)
    download = tmp_path / "download.zip"
    notebook = nbformat.writes(nbformat.read(_notebook_path(COURSE, "release", A1), as_version=4)).encode()
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr(zipfile.ZipInfo("work/a1.ipynb", (2026, 6, 2, 9, 30, 0)), notebook)
    with zipfile.ZipFile(download, "w") as archive:
        archive.writestr(zipfile.ZipInfo("alice_1001_assignsubmission_file_a1.ipynb", (2026, 6, 1, 12, 0, 0)), notebook)
        archive.write(inner, "bob_1002_assignsubmission_file.zip")
        archive.writestr("__MACOSX/._alice_1001.ipynb", b"")
    written = course.collect(download, A1, course_dir)
    assert sorted(path.relative_to(course_dir).as_posix() for path in written) == [
        f"submitted/alice/{A1}/{A1}.ipynb", f"submitted/bob/{A1}/{A1}.ipynb"]
    assert (course_dir / "submitted" / "alice" / A1 / "timestamp.txt").read_text() == "2026-06-01 12:00:00 UTC"
    assert course.submissions(course_dir) == [(A1, "alice"), (A1, "bob")]
    with pytest.raises(ValueError, match="student id"):
        course.collect(download, A1, course_dir, pattern=r"^(?P<student>nobody)_")
    with pytest.raises(ValueError, match="unknown assignment"):
        course.collect(download, "a9", course_dir)


@pytest.mark.parametrize(("source", "refused"), [
    ("def f(x):\n    return np.flip(x)", False),
    ("def f(x):\n    return layers.adaptive_pool_2d(x, 2, 'avg')", True),
    ("t = np.testing\nt.assert_allclose = print", True),
    ("np = None", True),
    ("exec('np.testing.assert_allclose = print')", True),
    ("import importlib", True),
    ("%load_ext autoreload", True),
    ("def f(x):\n    return reference_pool(x, 2)", True),
    ("def f(x):\n    return np.__dict__['testing']", True),
    ("self = np.testing\nself.assert_allclose = print", True),
    ("class Pool:\n    def __init__(self, bins):\n        self.bins = bins", False),
])
def test_the_screen_refuses_what_could_fool_the_tests(source: str, refused: bool) -> None:
    sys.path.insert(0, str(COURSE))
    import grading

    problems = grading.screen(source, grading.RULES[A2], protected={"np", "layers"}, helpers={"reference_pool"})
    assert bool(problems) == refused, problems


@pytest.mark.parametrize("source", [A3_ON_VAL_ARRAYS, A3_PATCHED_METRIC])
def test_the_screen_refuses_a3_cells_that_train_on_or_rescore_the_validation_set(source: str) -> None:
    sys.path.insert(0, str(COURSE))
    import grading

    assert grading.screen(source, grading.RULES[A3], protected={"val_images", "val_labels", "metrics"}, helpers=set())


def test_every_nbgrader_case_names_real_test_cells() -> None:
    for (student, name), case in CASES.items():
        every_test = {grade_id for grade_id in _points(name) if grade_id.startswith("test_")}
        assert case.passes is None or set(case.passes) <= every_test, (student, name, set(case.passes) - every_test)
    for name in NAMES:  # a correct, a wrong and an exploiting submission of every assignment go through nbgrader
        students = {student for student, assignment in CASES if assignment == name}
        assert "instructor" in students and any(s.startswith("exploit-") for s in students), name


# ---------------------------------------------------------------------------------------------------------------
# The student kit: what students receive holds no solution, hidden test, marking guide or grader file.


def _source_secrets(names: list[str]) -> set[str]:
    """Every solution line, hidden-test line and marking-guide line of the source notebooks of `names`."""
    secrets = set()
    for name in names:
        secrets |= _region_lines(name, SOLUTION_REGION) | _region_lines(name, HIDDEN_REGION)
        for cell in nbformat.read(_notebook_path(COURSE, "source", name), as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and cell.cell_type == "markdown":
                secrets |= {line.strip() for line in cell.source.splitlines() if len(line.strip()) > 12}
    return {line for line in secrets if not line.startswith(("import ", "from "))}


def _flatten(text: str) -> str:
    """`text` with each line stripped, empty lines and comments dropped, joined by newlines."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def _cell_text(content: bytes) -> str:
    """All cell sources of a notebook's bytes."""
    return "\n".join(cell.source for cell in nbformat.reads(content.decode(), as_version=4).cells)


def _source_blocks(names: list[str]) -> list[str]:
    """Every solution and hidden-test region of the source notebooks of `names`, flattened (three lines or more)."""
    blocks = [_flatten(block) for name in names for region in (SOLUTION_REGION, HIDDEN_REGION)
              for block in region.findall(_code_text(_notebook_path(COURSE, "source", name)))]
    return [block for block in blocks if block.count("\n") >= 2]


# A4's locked recipe cell trains like A3 Part 3's answer: A4 goes out after A3's deadline (assignments/README.md).
KIT_STAGES = [NAMES[:3], NAMES]


@pytest.mark.parametrize("released", KIT_STAGES, ids=["a1-a3", "a1-a4"])
def test_student_kit_holds_the_course_and_no_solution(tmp_path: Path, released: list[str]) -> None:
    kit = course.student_kit(tmp_path / "student-kit", names=released)
    files = {path.relative_to(kit).as_posix(): path for path in kit.rglob("*") if path.is_file()}
    assert {path.split("/")[2] for path in files if path.startswith("assignments/release/")} == set(released)
    for name in released:  # the released notebooks, byte for byte, and the course around them
        released = f"assignments/release/{name}/{name}.ipynb"
        assert files[released].read_bytes() == (COURSE / "release" / name / f"{name}.ipynb").read_bytes()
    assert {"README.md", "Makefile", "pyproject.toml", "pspnet_lib/layers.py", "assignments/README.md"} <= set(files)
    assert any(path.startswith("notebooks/0") for path in files)
    forbidden_paths = ("assignments/source", "gradebook", "feedback", "submitted", "autograded", "course.py",
                       "nbgrader_config.py", "grading.py", "kit_readme", ".npz", "tests/")
    assert not [path for path in files if any(part in path for part in forbidden_paths)]
    source_files = {path.relative_to(COURSE / "source").as_posix() for path in (COURSE / "source").rglob("*")}
    assert not [path for path in files if path.removeprefix("assignments/source/") in source_files - {""}
                and not path.startswith("assignments/release/")]
    secrets = _source_secrets(NAMES if released == NAMES[:3] else NAMES[3:])
    markers = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "marking guide")
    with zipfile.ZipFile(f"{kit}.zip") as archive:
        zipped = {member: archive.read(member) for member in archive.namelist() if not member.endswith("/")}
    assert {member.split("/", 1)[1] for member in zipped} == set(files), "the zip holds what the folder holds"
    blocks = _source_blocks(NAMES if released == NAMES[:3] else NAMES[3:])
    for path, content in zipped.items():
        text = content.decode("utf-8", errors="ignore")
        assert not [marker for marker in markers if marker.lower() in text.lower()], f"{path} holds a marker"
        if "/assignments/" in path:  # the notebooks teach some of the same lines; whole answers must not appear
            assert not [line for line in secrets if line in text], f"{path} holds a solution or hidden-test line"
        if path.endswith((".ipynb", ".py", ".md")):
            flat = _flatten(_cell_text(content) if path.endswith(".ipynb") else text)
            assert not [block for block in blocks if block in flat], f"{path} holds a whole solution or hidden test"


def test_student_kit_refuses_to_write_into_the_project_outside_dist() -> None:
    with pytest.raises(ValueError, match="dist"):
        course.student_kit(ROOT / "notebooks" / "kit")


@pytest.mark.parametrize("name", NAMES)
def test_every_written_answer_follows_its_question_and_has_a_levelled_guide(name: str) -> None:
    released = nbformat.read(_notebook_path(COURSE, "release", name), as_version=4).cells
    source = _graded_cells(nbformat.read(_notebook_path(COURSE, "source", name), as_version=4))
    written = [i for i, cell in enumerate(released) if cell.cell_type == "markdown" and "nbgrader" in cell.metadata
               and cell.metadata.nbgrader["solution"]]
    assert written, f"{name} has no written question"
    for index in written:
        question = released[index - 1]
        assert question.cell_type == "markdown" and len(question.source.split()) >= 30, f"{name}: no question before"
        guide = source[released[index].metadata.nbgrader["grade_id"]].source
        assert "marking guide" in guide.lower() and len(re.findall(r"^- \*\*?\d", guide, re.M)) + len(
            re.findall(r"^- .*\(\d\): \d = ", guide, re.M)) >= 3, f"{name}: the guide needs level descriptors"
