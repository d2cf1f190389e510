"""Tests of the tests, in-process, part 2: A3 Part 3 and A4 are scored by the trusted checker (assignments/grading.py)
from files like those their notebooks save, all made from one small PSPNet trained here (tests/test_grader_checks.py
holds the answer-cell cases; the two files run side by side under `make test`)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from test_assignments import A4
from test_grader_checks import A1, A1_CASES, A2, A2_CASES, A3, A3_CASES, _expected, _points, _scores, grading


@pytest.fixture(scope="module")
def trained(tmp_path_factory, graded_city) -> dict:
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


@functools.cache
def _predicted(weights: Path, network: str) -> np.ndarray:
    size, limit = grading.graded_sizes()
    model, problem = grading.load_course_model(weights, backbone="small", **json.loads(network))
    assert not problem, problem
    return grading.predict_main(model, grading.scored_split(size, limit)[0]).argmax(-1).astype(np.uint8)


def _predict(weights: Path, **kwargs) -> np.ndarray:
    """The class ids the model with `weights` predicts for the scored validation images (worked out once per
    weights file and network: the cases share a few trained models)."""
    return _predicted(weights, json.dumps(kwargs, sort_keys=True)).copy()


def _a3_files(folder: Path, weights: Path | None, predictions=None, reported=None) -> Path:
    """A folder holding what A3's notebook saves."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    if weights is not None:
        shutil.copy(weights, folder / grading.A3_MODEL)
        predictions = _predict(weights) if predictions is None else predictions
    if predictions is not None:
        np.savez_compressed(folder / grading.A3_PREDICTIONS, predictions=predictions)
        miou = grading._miou(_labels(), predictions) if reported is None else reported
        np.savez(folder / grading.A3_REPORT, reported_miou=float(miou))
    return folder


def _labels() -> np.ndarray:
    return _scored_labels().copy()


@functools.cache
def _scored_labels() -> np.ndarray:
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


def test_every_assignment_has_two_alternatives_three_mistakes_and_exploits() -> None:
    for name, cases in ((A1, A1_CASES), (A2, A2_CASES), (A3, A3_CASES), (A4, A4_CASES)):
        assert sum(case.startswith("alt-") for case in cases) >= 2, name
        assert sum(case.startswith("wrong-") for case in cases) >= 3, name
        assert sum(case.startswith("exploit-") for case in cases) >= 2, name
