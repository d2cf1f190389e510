"""Training recipes and time budgets: which defaults a run gets, and a learning rate that anneals to the deadline."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from pspnet_lib import models, training
from pspnet_lib.data import NUM_CLASSES
from pspnet_lib.run_files import atomic_write_text, history_csv, read_history
from pspnet_lib.training import callbacks as callbacks_module
from pspnet_lib.training.inputs import load_datasets, with_validation_count
from pspnet_lib.training.optimizers import DEFAULT_LEARNING_RATES
from pspnet_lib.training.recipes import RECIPES, UNTIL_THE_BUDGET, default_recipe_name, get_recipe

# --- which recipe, and what it fills in -----------------------------------------------------------------


def test_the_paper_recipe_with_a_gpu_or_imagenet_weights_else_the_cpu_one():
    assert default_recipe_name(gpu_count=1) == "paper"
    assert default_recipe_name(gpu_count=0, weights="imagenet") == "paper"
    assert default_recipe_name(gpu_count=0) == "cpu"


def test_a_cpu_run_gets_the_cpu_recipe_for_every_setting_left_out(tmp_path):
    config = training.configure(out=str(tmp_path / "run"))  # this machine has no GPU
    cpu = RECIPES["cpu"]
    assert config.recipe.name == "cpu"
    assert (config.recipe.spec.backbone, config.recipe.image_size, config.recipe.batch_size) == (cpu.spec.backbone, cpu.image_size, cpu.batch_size)
    assert (config.recipe.optimizer, config.recipe.lr, config.recipe.scale_range) == (cpu.optimizer, cpu.lr, cpu.scale_range)
    assert config.recipe.spec == models.NetworkSpec("pspnet", "small")
    assert config.recipe.epochs == 10  # no time budget: the default epoch count
    assert config.recipe.jaccard_weight == cpu.jaccard_weight > 0
    assert training.configure(out=str(tmp_path / "paper"), recipe="paper").recipe.jaccard_weight == 0.0
    assert training.configure(out=str(tmp_path / "mine"), jaccard_weight=0.25).recipe.jaccard_weight == 0.25


def test_imagenet_weights_get_the_papers_recipe_on_a_cpu_too(tmp_path):
    config = training.configure(out=str(tmp_path / "run"), weights="imagenet")
    assert (config.recipe.name, config.recipe.spec.backbone, config.recipe.optimizer, config.recipe.lr) == ("paper", "resnet50", "sgd", 0.01)
    assert config.recipe.scale_range == (0.5, 2.0) and config.recipe.head_lr_multiplier == 10.0


def test_settings_given_win_over_the_recipe(tmp_path):
    config = training.configure(
        out=str(tmp_path / "run"), recipe="paper", backbone="small", image_size=64, optimizer="adam",
        lr=0.5, scale_range=(1.0, 1.0), epochs=3,
    )
    assert (config.recipe.spec.backbone, config.recipe.image_size, config.recipe.optimizer, config.recipe.lr) == ("small", 64, "adam", 0.5)
    assert config.recipe.scale_range == (1.0, 1.0) and config.recipe.epochs == 3


def test_another_optimiser_than_the_recipes_keeps_its_own_default_rate(tmp_path):
    run = str(tmp_path / "run")
    assert RECIPES["paper"].optimizer == "sgd" and RECIPES["cpu"].optimizer == "adam"
    assert training.configure(out=run, recipe="paper", optimizer="adam").recipe.lr == DEFAULT_LEARNING_RATES["adam"]
    assert training.configure(out=run, recipe="cpu", optimizer="sgd").recipe.lr == DEFAULT_LEARNING_RATES["sgd"]
    assert training.configure(out=run, recipe="cpu", optimizer="adam").recipe.lr == RECIPES["cpu"].lr
    assert training.configure(out=run, recipe="paper", optimizer="adam", lr=0.2).recipe.lr == 0.2


def test_training_crops_are_the_recipes_share_of_the_scene_except_for_a_fixed_size_network(tmp_path):
    cpu = RECIPES["cpu"]
    config = training.configure(out=str(tmp_path / "run"), image_size=128)
    assert config.recipe.crop_size == max(32, round(cpu.crop_size / cpu.image_size * 128))
    assert training.configure(out=str(tmp_path / "run"), image_size=128, crop_size=64).recipe.crop_size == 64
    article = training.configure(out=str(tmp_path / "run"), network="article", image_size=64)
    assert article.recipe.crop_size == 64  # the article model's input has one size
    with pytest.raises(ValueError, match=r"crop_size must be equal to image_size \(64\)"):
        training.configure(out=str(tmp_path / "run"), network="article", image_size=64, crop_size=48)
    with pytest.raises(ValueError, match=r"must be between 32 and image_size \(64\), got 16"):
        training.configure(out=str(tmp_path / "run"), image_size=64, crop_size=16)


def test_the_cpu_recipe_cuts_its_crops_from_the_pairs_at_their_own_resolution(tmp_path, fine_detail_pairs):
    """`load_datasets` follows the config: crops of the 64 px pairs keep their 1-pixel columns only with it on."""
    assert RECIPES["cpu"].full_resolution_crops and not RECIPES["paper"].full_resolution_crops

    def first_crops(**settings) -> np.ndarray:
        config = training.configure(
            out=str(tmp_path / "run"), recipe="cpu", image_size=32, crop_size=32, scale_range=(2.0, 2.0), **settings
        )
        train_data, _ = load_datasets(config, fine_detail_pairs)
        return next(iter(train_data))[0].numpy()

    assert np.abs(np.diff(first_crops(), axis=2)).min() > 0.95
    assert np.abs(np.diff(first_crops(full_resolution_crops=False), axis=2)).max() < 0.1
    with pytest.raises(ValueError, match="full_resolution_crops must be True or False, got 'yes'"):
        training.configure(out=str(tmp_path / "run"), full_resolution_crops="yes")


def test_a_time_budget_without_an_epoch_count_runs_until_the_budget(tmp_path):
    config = training.configure(out=str(tmp_path / "run"), max_minutes=10)
    assert config.recipe.epochs == UNTIL_THE_BUDGET


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"recipe": "gpu"}, "recipe must be one of ('paper', 'cpu'), got 'gpu'"),
        ({"scale_range": (2.0, 1.0)}, "scale_range must be"),
        ({"scale_range": (0.0, 1.0)}, "scale_range must be"),
    ],
)
def test_bad_recipe_settings_are_clear_errors(tmp_path, settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        training.configure(out=str(tmp_path / "run"), **settings)


def test_the_cpu_recipe_validates_on_a_share_of_an_epoch_the_paper_on_the_whole_split(synthetic_pairs, tmp_path):
    assert get_recipe("cpu").validation_limit(600) == math.ceil(RECIPES["cpu"].validation_share * 600)
    assert get_recipe("paper").validation_limit(600) is None
    sizes = {}
    for name in ("cpu", "paper"):  # 8 train and 4 val pairs
        config = training.configure(out=str(tmp_path / name), data=str(synthetic_pairs), recipe=name,
                                      backbone="small", image_size=32, batch_size=2)
        _, val = load_datasets(with_validation_count(config, synthetic_pairs), synthetic_pairs)
        sizes[name] = sum(int(images.shape[0]) for images, _ in val)
    assert sizes == {"cpu": RECIPES["cpu"].validation_limit(8, at_least=2), "paper": 4}


def test_the_validation_share_covers_at_least_one_batch():
    # A tenth of 8 training images is one pair; split over two workers, one of them would get nothing.
    assert get_recipe("cpu").validation_limit(8) == 1
    assert get_recipe("cpu").validation_limit(8, at_least=4) == 4
    assert get_recipe("cpu").validation_limit(600, at_least=8) == math.ceil(RECIPES["cpu"].validation_share * 600)


def test_val_limit_overrides_the_recipes_validation_share(synthetic_pairs, tmp_path):
    sizes = {}
    for recipe, val_limit in (("cpu", 3), ("paper", 1)):  # the recipes alone would validate on 2 and 4 pairs
        config = training.configure(out=str(tmp_path / recipe), data=str(synthetic_pairs), recipe=recipe,
                                      backbone="small", image_size=32, batch_size=2, val_limit=val_limit)
        _, val = load_datasets(with_validation_count(config, synthetic_pairs), synthetic_pairs)
        sizes[recipe] = sum(int(images.shape[0]) for images, _ in val)
    assert sizes == {"cpu": 3, "paper": 1}


@pytest.mark.parametrize("val_limit", [0, -2, 1.5, True, "4"])
def test_a_bad_val_limit_is_a_clear_error(tmp_path, val_limit):
    with pytest.raises(ValueError, match=f"val_limit must be a positive int or None, got {val_limit!r}"):
        training.configure(out=str(tmp_path / "run"), val_limit=val_limit)


# --- the learning rate anneals to the deadline ----------------------------------------------------------


class FakeClock:
    """time.monotonic for TimeBudget, advanced by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tick(keras.callbacks.Callback):
    """Advance the fake clock by `seconds` before every training step (listed before the TimeBudget)."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self.clock.now += self.seconds


class LearningRates(keras.callbacks.Callback):
    """The learning rate each step ran with (listed after the TimeBudget)."""

    def __init__(self) -> None:
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None) -> None:
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def tiny_fit(budget, clock, seconds_per_step, epochs=100, initial_epoch=0, steps=4):
    """Fit a one-layer model on 4 one-image batches per epoch with `budget`; (learning rates, history)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1, name="logits")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=training.segmentation_loss())
    rates = LearningRates()
    images, labels = np.zeros((steps, 4, 4, 3), np.float32), np.zeros((steps, 4, 4), np.int32)
    history = model.fit(images, labels, batch_size=1, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
                        callbacks=[Tick(clock, seconds_per_step), budget, rates])
    return rates.rates, history.history


def test_the_learning_rate_follows_poly_of_the_time_left_and_reaches_zero_at_the_deadline(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(callbacks_module.time, "monotonic", clock)
    budget = training.TimeBudget(max_minutes=1.0, base_learning_rate=0.01)
    rates, history = tiny_fit(budget, clock, seconds_per_step=10.0)
    expected = [0.01 * (1 - 10 * step / 60) ** 0.9 for step in range(1, 7)]
    assert rates == pytest.approx(expected, abs=1e-9)  # step 6 runs at 0: the final model is the annealed one
    assert budget.stopped and len(history["loss"]) == 2  # 6 steps: one epoch of 4, then 2 of the next
    assert history["train_minutes"] == pytest.approx([40 / 60, 1.0])


def test_the_epoch_count_ends_the_schedule_when_it_comes_before_the_deadline(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(callbacks_module.time, "monotonic", clock)
    budget = training.TimeBudget(max_minutes=60.0, base_learning_rate=0.01, total_steps=8)
    rates, history = tiny_fit(budget, clock, seconds_per_step=1.0, epochs=2)
    # Before step k (from 0) k steps of 8 are done and k + 1 seconds of 3,600 spent: the step share leads.
    assert rates == pytest.approx([0.01 * (1 - max(k / 8, (k + 1) / 3600)) ** 0.9 for k in range(8)], abs=1e-9)
    assert not budget.stopped and len(history["loss"]) == 2


def test_a_resumed_run_keeps_the_deadline_of_the_first_session(monkeypatch, tmp_path):
    clock = FakeClock()
    monkeypatch.setattr(callbacks_module.time, "monotonic", clock)
    history_path = tmp_path / "history.csv"  # the first session finished epoch 1 after 30 s
    atomic_write_text(history_path, history_csv([{"epoch": 1, "loss": 1.0, "train_minutes": 0.5}]))
    budget = training.TimeBudget(max_minutes=1.0, history_path=history_path, base_learning_rate=0.01)
    rates, history = tiny_fit(budget, clock, seconds_per_step=10.0, initial_epoch=1)
    assert budget.earlier_seconds == pytest.approx(30.0)
    assert rates == pytest.approx([0.01 * (1 - (30 + 10 * step) / 60) ** 0.9 for step in range(1, 4)], abs=1e-9)
    assert budget.stopped and history["train_minutes"] == pytest.approx([1.0])


class SlowValidation(keras.callbacks.Callback):
    """Every validation takes `seconds` of the fake clock."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def on_test_begin(self, logs=None) -> None:
        self.clock.now += self.seconds


def fit_with_validation(clock: FakeClock, budget: training.TimeBudget, *slow: keras.callbacks.Callback) -> dict:
    """History of a tiny fit of 2 steps an epoch (10 s each on `clock`) with validation, until `budget` stops it."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(NUM_CLASSES, 1, name="logits")(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=training.segmentation_loss())
    images, labels = np.zeros((2, 4, 4, 3), np.float32), np.zeros((2, 4, 4), np.int32)
    return model.fit(images, labels, batch_size=1, epochs=100, validation_data=(images, labels), verbose=0,
                     callbacks=[Tick(clock, 10.0), budget, *slow]).history


def test_the_last_validation_is_held_in_reserve_so_it_ends_by_the_deadline(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(callbacks_module.time, "monotonic", clock)
    budget = training.TimeBudget(max_minutes=1.0, base_learning_rate=0.01)
    history = fit_with_validation(clock, budget, SlowValidation(clock, 10.0))
    # Epoch 1: steps to 20 s, validation to 30 s. Then 10 s are held back: the run stops at 50 s, validates to 60.
    assert budget.validation_seconds == pytest.approx(10.0)
    assert history["train_minutes"] == pytest.approx([0.5, 1.0])


@pytest.mark.slow
def test_a_budgeted_run_anneals_records_its_minutes_and_resumes_its_schedule(synthetic_pairs, tmp_path, monkeypatch):
    # The run's clock is a fake one: every step takes 1 s and every validation 1 s, whatever the machine's load.
    clock = FakeClock()
    monkeypatch.setattr(callbacks_module.time, "monotonic", clock)
    config = training.configure(out=str(tmp_path / "run"), data=str(synthetic_pairs), image_size=32,
                                  batch_size=4, max_minutes=0.5, tensorboard=False, precise_batch_norm=False)
    result = training.train(config, [Tick(clock, 1.0), SlowValidation(clock, 1.0)], verbose=0)
    rows = read_history(tmp_path / "run" / "history.csv")
    minutes = [row["train_minutes"] for row in rows]
    # 8 pairs in batches of 4: 3 s per epoch with its validation, so 10 epochs fill the 30 s exactly (the last
    # validation's time is held in reserve, so it ends by the deadline).
    assert result.stopped_by_time_budget
    assert minutes == pytest.approx([3 * epoch / 60 for epoch in range(1, 11)])
    final_rate = float(keras.ops.convert_to_numpy(result.model.optimizer.learning_rate))
    assert 0 <= final_rate < 0.5 * config.recipe.lr  # annealed (to 0 at the deadline itself)


@pytest.mark.slow
@pytest.mark.parametrize("max_minutes", [0.1, None])
def test_a_constant_schedule_keeps_the_initial_rate_with_or_without_a_budget(synthetic_pairs, tmp_path, monkeypatch,
                                                                              max_minutes):
    clock = FakeClock()  # 1 s per step and per validation: 3 s per epoch, so the 6 s budget holds two epochs
    monkeypatch.setattr(callbacks_module.time, "monotonic", clock)
    config = training.configure(out=str(tmp_path / "run"), data=str(synthetic_pairs), image_size=32, batch_size=4,
                                max_minutes=max_minutes, epochs=2, lr_schedule="constant", tensorboard=False,
                                precise_batch_norm=False)
    rates = LearningRates()
    result = training.train(config, [Tick(clock, 1.0), SlowValidation(clock, 1.0), rates], verbose=0)
    assert len(read_history(tmp_path / "run" / "history.csv")) == 2
    assert rates.rates == pytest.approx([config.recipe.lr] * 4)  # 2 epochs of 2 steps, none annealed
    assert float(keras.ops.convert_to_numpy(result.model.optimizer.learning_rate)) == pytest.approx(config.recipe.lr)


def test_training_batches_are_crops_and_validation_batches_whole_scenes(synthetic_pairs, tmp_path):
    config = training.configure(out=str(tmp_path / "run"), data=str(synthetic_pairs), image_size=64,
                                  crop_size=48, batch_size=2)
    train, val = load_datasets(config, synthetic_pairs)
    images, labels = next(iter(train))
    assert images.shape == (2, 48, 48, 3) and labels.shape == (2, 48, 48)
    images, labels = next(iter(val))
    assert images.shape[1:] == (64, 64, 3) and labels.shape[1:] == (64, 64)


def test_without_a_budget_the_clock_still_records_minutes_and_never_stops(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(callbacks_module.time, "monotonic", clock)
    budget = training.TimeBudget(max_minutes=None)
    rates, history = tiny_fit(budget, clock, seconds_per_step=600.0, epochs=2)
    assert not budget.stopped and history["train_minutes"] == pytest.approx([40.0, 80.0])
    assert rates == pytest.approx([0.01] * 8)  # the optimiser's own learning rate, untouched


class SlowFinalPass(keras.callbacks.Callback):
    """The pass before the last validation (as PreciseBatchNorm's) takes `seconds` of the fake clock."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    def on_test_begin(self, logs=None) -> None:
        if self.model.stop_training:
            self.clock.now += self.seconds


def test_a_final_pass_before_the_last_validation_is_held_in_reserve_too(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(callbacks_module.time, "monotonic", clock)
    budget = training.TimeBudget(max_minutes=1.0, base_learning_rate=0.01, final_pass_share=1.0)
    history = fit_with_validation(clock, budget, SlowFinalPass(clock, 10.0), SlowValidation(clock, 10.0))
    # Epoch 1 ends at 30 s (its validation took 10 s); then twice that is held back: the run stops at 40 s, and
    # the final pass (10 s) and the last validation (10 s) end at the deadline.
    assert history["train_minutes"] == pytest.approx([0.5, 1.0])
