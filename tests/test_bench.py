"""The benchmark's own logic on tiny inputs: table, targets, JSON schema, machine description, loaders, options.

No timing is asserted here: speeds are measured by `make bench`, never by tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
from importlib import metadata
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from PIL import Image

# bench/ is a top-level folder run as `python -m bench`, not part of the installed package: make it importable
# under a bare `pytest` too (`python -m pytest` already puts the working directory on sys.path).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench import cli, machine, notebooks, pipeline, targets, throughput  # noqa: E402
from bench.nearest_colour import nearest_palette_ids, nearest_palette_ids_per_pixel  # noqa: E402
from bench.results import (  # noqa: E402
    TABLE_COLUMNS,
    Report,
    Row,
    load_report,
    markdown_table,
    validate_report,
    write_report,
)
from bench.timing import items_per_second  # noqa: E402
from pspnet_lib.data import IGNORE_LABEL, PALETTE, list_pairs, read_pair  # noqa: E402
from pspnet_lib.data.palette import border_artefacts  # noqa: E402

# ---------------------------------------------------------------- table


def table_cells(line: str) -> list[str]:
    """Cells of one Markdown table line, honouring escaped pipes."""
    cells = line.strip().strip("|").replace("\\|", "\0").split("|")
    return [cell.strip().replace("\0", "|") for cell in cells]


def sample_rows() -> list[Row]:
    """Rows covering every kind of value, target and a pipe in a detail."""
    return [
        Row("pipeline", "tf.data", 123.456, "pairs/s", "a | b"),
        Row("pipeline", "speed-up", 9.5, "x", "", ">= 10x", False),
        Row("learning", "mIoU", 0.04321, "mIoU", "", "> others", True),
        Row("training", "failed case", None, "images/s", "failed: XLA"),
    ]


def test_table_has_header_separator_and_one_line_per_row():
    lines = markdown_table(sample_rows()).splitlines()
    assert table_cells(lines[0]) == list(TABLE_COLUMNS)
    assert set(lines[1].replace("|", "")) == {"-"}
    assert len(lines) == 2 + len(sample_rows())
    assert all(len(table_cells(line)) == len(TABLE_COLUMNS) for line in lines)


def test_table_cells_show_values_targets_and_met():
    body = [
        dict(zip(TABLE_COLUMNS, table_cells(line), strict=True))
        for line in markdown_table(sample_rows()).splitlines()[2:]
    ]
    assert body[0]["value"] == "123" and body[0]["detail"] == "a | b" and body[0]["met"] == ""
    assert body[1]["value"] == "9.5" and body[1]["target"] == ">= 10x" and body[1]["met"] == "**no**"
    assert body[2]["value"] == "0.0432" and body[2]["met"] == "yes"
    assert body[3]["value"] == "-"


# ---------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("fast", "slow", "met"), [(100.0, 10.0, True), (99.9, 10.0, False), (50.0, 2.0, True)]
)
def test_speedup_target_is_ten_times(fast, slow, met):
    ratio = targets.speedup(fast, slow)
    assert ratio == pytest.approx(fast / slow)
    assert targets.speedup_met(ratio) is met


@pytest.mark.parametrize(("fast", "slow"), [(None, 1.0), (1.0, None), (1.0, 0.0)])
def test_missing_rates_give_no_speedup_and_miss_the_target(fast, slow):
    assert targets.speedup(fast, slow) is None
    assert targets.speedup_met(None) is False


@pytest.mark.parametrize(
    ("scores", "ahead"),
    [
        ({"pspnet": 0.5, "fcn": 0.4, "article": 0.1}, True),
        ({"pspnet": 0.5, "fcn": 0.5, "article": 0.1}, False),  # a tie is not "ahead"
        ({"pspnet": 0.3, "fcn": 0.4, "article": 0.1}, False),
        ({"pspnet": 0.3, "fcn": math.nan, "article": None}, True),  # models without a score lose
        ({"pspnet": None, "fcn": 0.1}, False),
    ],
)
def test_pspnet_must_beat_every_other_model(scores, ahead):
    assert targets.leader_ahead(scores) is ahead


def test_leader_ahead_needs_the_leader_and_a_rival():
    with pytest.raises(ValueError, match="pspnet"):
        targets.leader_ahead({"fcn": 0.3, "article": 0.1})
    with pytest.raises(ValueError, match="at least one other"):
        targets.leader_ahead({"pspnet": 0.3})


def test_notebook_limits_follow_the_issue():
    assert targets.notebook_limit_seconds("notebooks/01_dilated_convolutions.ipynb", "fast") == 60
    assert targets.notebook_limit_seconds("notebooks/01_dilated_convolutions.ipynb", "default") == 300
    assert targets.notebook_limit_seconds("notebooks/08_ablation_pyramid_pooling.ipynb", "default") == 600
    assert targets.notebook_limit_seconds("notebooks/08_ablation_pyramid_pooling.ipynb", "fast") == 60
    with pytest.raises(ValueError, match="mode"):
        targets.notebook_limit_seconds("x.ipynb", "slow")


def test_within_limit_needs_success_and_time():
    assert targets.within_limit(60.0, 60.0)
    assert not targets.within_limit(60.5, 60.0)
    assert not targets.within_limit(1.0, 60.0, succeeded=False)
    assert targets.describe_limit(300) == "<= 5 min"


# ---------------------------------------------------------------- JSON schema


def sample_report() -> Report:
    """A report with the sample rows and a machine description."""
    return Report(
        created="2025-01-01T00:00:00+00:00",
        command="python -m bench",
        machine={"cpu_model": "x"},
        options={"quick": True},
        notes="shared CPU",
        rows=sample_rows(),
        unmeasured=["gpu"],
    )


def test_report_round_trips_through_json(tmp_path):
    path = write_report(sample_report(), tmp_path / "results" / "run.json")
    assert json.loads(path.read_text())["schema_version"] == 1
    assert load_report(path) == sample_report()
    assert [p.name for p in path.parent.iterdir()] == ["run.json"]  # no temporary file left behind


def test_results_file_gets_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        path = write_report(sample_report(), tmp_path / "run.json")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600: results are shared


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("machine"), "missing key 'machine'"),
        (lambda d: d.update(schema_version=2), "schema_version 2"),
        (lambda d: d.update(notes=None), "'notes' must be str"),
        (lambda d: d["rows"][0].pop("unit"), r"rows\[0\]: missing key 'unit'"),
        (lambda d: d["rows"][1].update(value="9.5"), r"rows\[1\]: 'value' must be"),
        (lambda d: d["rows"][1].update(value=True), r"rows\[1\]: 'value' must be"),
        (lambda d: d["rows"][1].update(met="yes"), r"rows\[1\]: 'met' must be"),
        (lambda d: d["rows"][2].update(section="speed"), "section must be one of"),
        (lambda d: d["rows"][2].update(value=math.inf), "finite"),
    ],
)
def test_schema_check_names_the_wrong_field(change, message):
    data = sample_report().as_json()
    change(data)
    with pytest.raises(ValueError, match=message):
        validate_report(data)


def test_loading_a_broken_file_names_it(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="broken.json is not a benchmark results file"):
        load_report(path)


def test_committed_results_files_follow_the_schema():
    results = sorted((Path(cli.RESULTS_DIR)).glob("*.json"))
    for path in results:
        load_report(path)


# ---------------------------------------------------------------- machine


X86_CPUINFO = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n"
    "flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16 avx512vl amx_tile\n"
)
ARM_CPUINFO = "processor\t: 0\nBogoMIPS\t: 48.00\nCPU part\t: 0xd0c\n\nHardware\t: BCM2835\n"


def test_cpu_model_is_read_from_cpuinfo():
    assert machine.cpu_model_from_cpuinfo(X86_CPUINFO) == "AMD EPYC 9B14"
    assert machine.cpu_model_from_cpuinfo(ARM_CPUINFO) == "BCM2835"
    assert machine.cpu_model_from_cpuinfo("processor\t: 0\n") is None


def test_cpu_instruction_set_flags_are_read_from_cpuinfo():
    assert machine.cpu_isa_flags_from_cpuinfo(X86_CPUINFO) == ["amx_tile", "avx2", "avx512_bf16", "avx512f", "avx512vl"]
    assert machine.cpu_isa_flags_from_cpuinfo(ARM_CPUINFO) == []


def test_machine_description_lists_cores_gpus_and_versions():
    described = machine.describe_machine(gpus=[])
    assert described["gpus"] == []
    assert 1 <= described["usable_cores"] <= described["logical_cores"]
    assert described["cpu_model"]
    assert isinstance(described["cpu_flags"], list) and all(isinstance(flag, str) for flag in described["cpu_flags"])
    assert described["tensorflow_onednn"] is (os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1")  # conftest imports pspnet_lib first
    versions = described["versions"]
    assert versions["numpy"] == np.__version__
    assert versions["keras"] == metadata.version("keras")
    assert versions["python"].count(".") == 2
    json.dumps(described)  # JSON-ready


def test_installed_versions_skip_missing_packages():
    assert set(machine.installed_versions(("numpy", "surely-not-installed-xyz"))) == {"python", "numpy"}


# ---------------------------------------------------------------- nearest colour and the plain loop


def test_palette_colours_and_small_perturbations_decode_to_their_ids():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, len(PALETTE), (6, 7))
    # half the smallest distance between two palette colours keeps every pixel nearest its own colour
    pairwise = np.sqrt(((PALETTE[:, None].astype(float) - PALETTE[None].astype(float)) ** 2).sum(-1))
    radius = (pairwise[~np.eye(len(PALETTE), dtype=bool)].min() / 2 - 0.5) / np.sqrt(3)
    noise = rng.integers(-int(radius), int(radius) + 1, (6, 7, 3))
    rgb = np.clip(PALETTE[ids].astype(int) + noise, 0, 255).astype(np.uint8)
    assert np.array_equal(nearest_palette_ids(PALETTE[ids]), ids)
    assert np.array_equal(nearest_palette_ids(rgb), ids)
    assert np.array_equal(nearest_palette_ids_per_pixel(rgb), ids)


def test_per_pixel_loop_matches_the_vectorised_decoding_on_random_colours():
    rgb = np.random.default_rng(1).integers(0, 256, (9, 11, 3)).astype(np.uint8)
    assert np.array_equal(nearest_palette_ids_per_pixel(rgb), nearest_palette_ids(rgb))


def test_nearest_colour_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="uint8 RGB"):
        nearest_palette_ids(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="one image"):
        nearest_palette_ids_per_pixel(np.zeros((1, 2, 2, 3), np.uint8))


def test_tutorial_reader_agrees_with_read_pair_where_read_pair_is_sure(synthetic_pairs):
    path = list_pairs(synthetic_pairs / "val")[0]
    photo, ids = pipeline.tutorial_read_pair(path)
    library_photo, library_ids = read_pair(path)
    # Where the library is sure: labelled, and not a JPEG border blend its border-aware rule overrode.
    label_half = np.array(Image.open(path).convert("RGB"))[:, photo.shape[1] :]
    sure = (library_ids != IGNORE_LABEL) & ~border_artefacts(label_half)
    assert np.array_equal(photo, library_photo)
    assert sure.mean() > 0.5  # the synthetic city has void regions (e.g. the ego vehicle)
    assert np.array_equal(ids[sure], library_ids[sure])


def test_one_by_one_loader_yields_augmented_training_pairs(synthetic_pairs):
    paths = list_pairs(synthetic_pairs / "train")[:3]
    pairs = pipeline.load_one_by_one(paths, read_pair, size=32, seed=0)
    assert len(pairs) == 3
    for image, ids in pairs:
        assert image.shape == (32, 32, 3) and image.dtype == np.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert ids.shape == (32, 32) and ids.dtype == np.int32
        assert set(np.unique(ids)) <= set(range(len(PALETTE))) | {IGNORE_LABEL}


def test_numpy_augmentation_pads_with_ignore_and_flips_image_and_label_together():
    photo = np.zeros((8, 8, 3), np.uint8)
    photo[:, :4] = 200  # bright left half, labelled 1; dark right half, labelled 2
    ids = np.where(np.arange(8) < 4, 1, 2).astype(np.uint8)[None].repeat(8, 0)
    for seed in range(20):
        image, labels = pipeline.augment_pair_numpy(photo, ids, 8, np.random.default_rng(seed))
        assert image.shape == (8, 8, 3) and labels.shape == (8, 8)
        assert np.all(image[labels == IGNORE_LABEL] == 0)
        if (labels == 1).any() and (labels == 2).any():  # bilinear blur at the border: compare the means
            assert image[labels == 1].mean() > image[labels == 2].mean() + 50


# ---------------------------------------------------------------- timing and throughput arithmetic


def test_items_per_second_times_only_the_repeats():
    ticks = iter([10.0, 14.0])  # start and end of the timed part
    calls = []

    def step() -> int:
        calls.append(1)
        return 5

    assert items_per_second(step, warmup=2, repeats=4, clock=lambda: next(ticks)) == pytest.approx(20 / 4)
    assert len(calls) == 6
    with pytest.raises(ValueError, match="repeats"):
        items_per_second(step, warmup=0, repeats=0)


def test_flops_count_two_per_multiply_add_and_three_forwards_per_training_step():
    assert throughput.flops_from_multiply_adds(1_000, training=False) == 2_000
    assert throughput.flops_from_multiply_adds(1_000, training=True) == 6_000
    assert throughput.gflops_per_second(4.0, 3 * 10**9) == pytest.approx(12.0)


def test_throughput_cases_cover_backbones_sizes_xla_and_precisions():
    cases = throughput.throughput_cases(
        ("small", "resnet50"), (128, 256), ("float32", "mixed_float16"), quick=False
    )
    assert len(cases) == 2 * 2 * 2 * 2
    assert {(c.backbone, c.image_size, c.xla, c.precision) for c in cases} == {
        (b, s, x, p)
        for b in ("small", "resnet50")
        for s in (128, 256)
        for x in (False, True)
        for p in ("float32", "mixed_float16")
    }
    assert all(c.batch_size == 2 and c.steps <= 3 for c in cases if c.backbone == "resnet50")
    assert cases[0].label() == "small 128px XLA off float32"


# ---------------------------------------------------------------- options


def test_only_keeps_the_canonical_order_and_rejects_unknown_sections():
    assert cli.parse_sections("notebooks, pipeline") == ("pipeline", "notebooks")
    assert cli.parse_sections(None) == ("pipeline", "training", "learning", "recipe", "notebooks")
    with pytest.raises(argparse.ArgumentTypeError, match="--only takes sections"):
        cli.parse_sections("pipeline,gpu")


def test_command_line_options():
    args = cli.build_parser().parse_args(["--only", "learning", "--budget-minutes", "0.5", "--quick"])
    assert args.only == ("learning",) and args.budget_minutes == 0.5 and args.quick
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--budget-minutes", "0"])
    assert cli.build_parser().parse_args([]).seeds == (0, 1, 2)
    assert cli.build_parser().parse_args(["--seeds", "1,2"]).seeds == (1, 2)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--seeds", "one"])


def test_unmeasured_notes_name_skipped_sections_and_missing_gpu():
    args = cli.build_parser().parse_args(["--only", "pipeline"])
    notes = cli.unmeasured_notes(args, {"gpus": []})
    assert "section training: not run (--only)" in notes and "section pipeline: not run (--only)" not in notes
    assert any("no GPU" in note for note in notes)
    assert not any("GPU" in note for note in cli.unmeasured_notes(args, {"gpus": [{"name": "A100"}]}))


@pytest.mark.slow  # imports TensorFlow through pspnet_lib.training
def test_mixed_precision_rows_only_with_a_gpu():
    assert cli.mixed_precision_policies([]) == ("float32",)
    ampere = [{"name": "A100", "compute_capability": [8, 0]}]
    volta = [{"name": "V100", "compute_capability": [7, 0]}]
    assert cli.mixed_precision_policies(ampere) == ("float32", "mixed_bfloat16")
    assert cli.mixed_precision_policies(volta) == ("float32", "mixed_float16")


# ---------------------------------------------------------------- notebooks


def test_kernel_environment_sets_fast_mode_only_when_asked():
    base = {"PSPNET_FAST": "1", "HOME": "/home/x"}
    assert notebooks.kernel_environment("fast", base)["PSPNET_FAST"] == "1"
    default = notebooks.kernel_environment("default", base)
    assert (
        "PSPNET_FAST" not in default
        and default["HOME"] == "/home/x"
        and default["TF_CPP_MIN_LOG_LEVEL"] == "2"
    )
    with pytest.raises(ValueError, match="mode"):
        notebooks.kernel_environment("slow", base)


def test_notebook_paths_are_the_numbered_notebooks_in_order(tmp_path):
    for name in ("10_b.ipynb", "02_a.ipynb", "scratch.ipynb", "notes.md"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in notebooks.notebook_paths(tmp_path)] == ["02_a.ipynb", "10_b.ipynb"]


@pytest.mark.slow
def test_notebook_rows_run_copies_and_report_failures(tmp_path):
    cells = {
        "01_ok.ipynb": "import os\nassert os.environ['PSPNET_FAST'] == '1'",
        "02_broken.ipynb": "raise RuntimeError('boom')",
    }
    for name, source in cells.items():
        nbformat.write(new_notebook(cells=[new_code_cell(source)]), tmp_path / name)
    ok, broken = notebooks.notebook_rows(tmp_path, modes=("fast",))
    assert ok.name == "01_ok.ipynb (fast mode)" and ok.met is True and ok.target == "<= 1 min"
    assert broken.met is False and "RuntimeError" in broken.detail and "boom" in broken.detail
    assert (
        nbformat.read(tmp_path / "02_broken.ipynb", as_version=4).cells[0].outputs == []
    )  # originals untouched


def test_interrupted_run_keeps_its_rows_and_says_what_is_missing(tmp_path, monkeypatch):
    def interrupted_section(args, scratch, machine):
        yield Row("pipeline", "first", 1.0, "pairs/s")
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setitem(cli.SECTION_RUNNERS, "pipeline", interrupted_section)
    args = cli.build_parser().parse_args(["--only", "pipeline,training"])
    report = sample_report()
    report.rows, report.unmeasured = [], []
    with pytest.raises(KeyboardInterrupt):
        cli.run_sections(args, report, tmp_path / "run.json")
    saved = load_report(tmp_path / "run.json")
    assert [row.name for row in saved.rows] == ["first"]
    assert saved.unmeasured == [
        "run interrupted (SIGTERM) during section pipeline after 1 rows: later rows not measured"
    ]


def test_rows_finished_after_a_stop_request_are_dropped(tmp_path, monkeypatch):
    stop = threading.Event()

    def section(args, scratch, machine):
        yield Row("pipeline", "before", 1.0, "pairs/s")
        stop.set()  # as the signal handler would, in code that swallowed the KeyboardInterrupt
        yield Row("pipeline", "cut short", 2.0, "pairs/s")

    monkeypatch.setitem(cli.SECTION_RUNNERS, "pipeline", section)
    args = cli.build_parser().parse_args(["--only", "pipeline"])
    report = sample_report()
    report.rows = []
    with pytest.raises(KeyboardInterrupt):
        cli.run_sections(args, report, tmp_path / "run.json", stop)
    assert [row.name for row in load_report(tmp_path / "run.json").rows] == ["before"]


def test_recipe_section_links_the_first_pairs_and_trains_what_the_documented_command_line_configures(
    synthetic_pairs, tmp_path, monkeypatch
):
    from bench.recipe import RecipeSetup, recipe_config, seed_rows, subset_dataset
    from pspnet_lib.cli import build_parser
    from pspnet_lib.cli.train import recipe_changes
    from pspnet_lib.data import list_pairs
    from pspnet_lib.training import configure

    subset = subset_dataset(synthetic_pairs, tmp_path / "pairs", train_pairs=5, val_pairs=2)
    assert [p.name for p in list_pairs(subset / "train")] == [f"{i}.jpg" for i in range(1, 6)]
    assert [p.name for p in list_pairs(subset / "val")] == ["1.jpg", "2.jpg"]
    setup = RecipeSetup(synthetic_pairs, budget_minutes=10)
    monkeypatch.delenv("PSPNET_FAST", raising=False)  # the bench measures the default mode
    documented = build_parser().parse_args(
        ["train", "--recipe", "cpu", "--data", str(subset), "--out", str(tmp_path / "run"), "--backbone", "small",
         "--image-size", "128", "--batch-size", "8", "--max-minutes", "10", "--seed", "2", "--no-tensorboard"])
    cli_recipe = configure(documented.out, documented.data, documented.recipe, **recipe_changes(documented)).recipe
    assert recipe_config(setup, subset, tmp_path / "run", seed=2).recipe == cli_recipe
    assert cli_recipe.name == "cpu" and cli_recipe.max_minutes == 10 and cli_recipe.seed == 2
    result = {"seed": 2, "final_miou": 0.26, "final_pixel_accuracy": 0.77, "best_miou": 0.27,
              "best_pixel_accuracy": 0.8, "steps": 100, "epochs": 3, "seconds": 40.0, "images_per_second": 20.0}
    rows = seed_rows(result, setup)
    assert [row.met for row in rows] == [True, False, True]  # mIoU >= 0.25, pixel accuracy < 0.78, >= 18 img/s


def test_each_ingredient_taken_out_changes_the_recipe_in_those_settings_only(synthetic_pairs, tmp_path):
    import dataclasses

    from bench.recipe import INGREDIENTS, RecipeSetup, ingredient_changes, recipe_config

    setup = RecipeSetup(synthetic_pairs)
    base = recipe_config(setup, synthetic_pairs, tmp_path / "run", 0).recipe
    for name in INGREDIENTS:
        changes = ingredient_changes(name, setup)
        ablated = recipe_config(setup, synthetic_pairs, tmp_path / "run", 0, **changes).recipe
        differing = {item.name for item in dataclasses.fields(base) if getattr(base, item.name) != getattr(ablated, item.name)}
        spec_changes = {key for key in changes if not hasattr(base, key)}
        assert differing == set(changes) - spec_changes | ({"spec"} if spec_changes else set()), name
    assert ingredient_changes("crops", setup)["crop_size"] == setup.image_size  # whole scenes
    with pytest.raises(ValueError, match="unknown ingredient 'dropout'; expected one of crops"):
        ingredient_changes("dropout", setup)


def test_without_takes_ingredient_names_or_all():
    from bench.recipe import INGREDIENTS

    parser = cli.build_parser()
    assert parser.parse_args(["--without", "crops,width"]).without == ("crops", "width")
    assert parser.parse_args(["--without", "all"]).without == tuple(INGREDIENTS)
    assert parser.parse_args([]).without == ()
    with pytest.raises(SystemExit):
        parser.parse_args(["--without", "crops,dropout"])


def recipe_results_file(path: Path, systems: dict[str, list[float]], cpu_model: str = "AMD EPYC", quick=False) -> Path:
    """A results file of the recipe section: each system's final mIoU for seeds 0, 1, ... (system: "recipe",
    "plain baseline" or an ingredient's name)."""
    names = {"recipe": "final model mIoU, seed {}", "plain baseline": "plain baseline final mIoU, seed {}"}
    rows = [
        {"section": "recipe", "name": names.get(system, f"recipe without {system} final mIoU, seed {{}}").format(seed),
         "value": miou, "unit": "mIoU", "extra": {"seed": seed, "final_miou": miou, "final_miou_border_aware": miou + 0.02,
                                                  "final_pixel_accuracy": 0.8, "steps": 3000 + seed}}
        for system, values in systems.items() for seed, miou in enumerate(values)
    ]
    report = {"machine": {"cpu_model": cpu_model, "cpu_flags": ["avx2"], "usable_cores": 2},
              "options": {"budget_minutes": None, "quick": quick}, "rows": rows}
    path.write_text(json.dumps(report))
    return path


def test_recipe_summary_pairs_seeds_across_files_and_keeps_an_ingredient_only_when_it_beats_the_seed_noise(tmp_path):
    from bench import recipe_summary

    first = recipe_results_file(tmp_path / "a.json", {"recipe": [0.30, 0.32, 0.34], "plain baseline": [0.2, 0.2, 0.2]})
    second = recipe_results_file(tmp_path / "b.json", {"crops": [0.25, 0.27, 0.29], "width": [0.30, 0.31, 0.35],
                                                       "soft-jaccard": [0.2]})
    summary = recipe_summary.summarize(recipe_summary.load_runs([first, second]))
    assert summary["recipe"]["sd"] == pytest.approx(0.02) and summary["ratio"] == pytest.approx(1.6)
    crops, width = summary["ingredients"]["crops"], summary["ingredients"]["width"]
    across = " (only 0 of 3 pairs from one sitting)"  # no control of the recipe beside them: paired across files
    assert crops["buys"] == pytest.approx([0.05] * 3) and crops["verdict"] == "pays" + across
    assert width["mean_buys"] == pytest.approx(0.0) and width["verdict"] == "does not pay" + across
    assert summary["ingredients"]["soft-jaccard"]["verdict"] == "too few seeds"
    table = recipe_summary.markdown(summary)
    assert "| without crops: " in table and f"+5.0 / +5.0 / +5.0; +5.0 | pays{across} |" in table and "**1.60x**" in table
    assert "| 3,000 / 3,001 / 3,002 | 32.0 ± 2.0 | 34.0 |" in table  # steps, mean ± sd, border-aware (+2 points)
    assert crops["mean_border_aware"] == pytest.approx(0.29) and crops["steps"] == [3000, 3001, 3002]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{recipe_summary.BEGIN}\nold table\n{recipe_summary.END}\nafter\n")
    recipe_summary.write_into_readme(table, readme)
    assert readme.read_text() == f"intro\n{recipe_summary.BEGIN}\n{table}\n{recipe_summary.END}\nafter\n"


def test_recipe_summary_keeps_the_first_seeds_curve_and_pools_the_seeds_confusion_counts(tmp_path):
    from bench import recipe_summary

    path = recipe_results_file(tmp_path / "a.json", {"recipe": [0.3, 0.3], "plain baseline": [0.2, 0.2]})
    report = json.loads(path.read_text())
    for row in report["rows"]:  # road right everywhere; seed 0 calls 1 of its 3 sidewalk pixels road, seed 1 all 3
        seed = row["extra"]["seed"]
        confusion = np.zeros((19, 19), int)
        confusion[0, 0], confusion[1, 1], confusion[1, 0] = 6, 2 - 2 * seed, 1 + 2 * seed
        row["extra"] |= {"final_confusion": confusion.tolist(), "curve": [{"epoch": 1, "val_logits_miou": 0.1 + seed}]}
    path.write_text(json.dumps(report))
    recipe = recipe_summary.summarize(recipe_summary.load_runs([path]))["recipe"]
    assert recipe["curve"] == [{"epoch": 1, "val_logits_miou": 0.1}] and recipe["curve_seed"] == 0
    assert recipe["confusion"][1][:2] == [4, 2] and recipe["confusion"][0][0] == 12
    assert recipe["per_class_iou"]["road"] == pytest.approx(12 / 16) and recipe["per_class_iou"]["sidewalk"] == pytest.approx(2 / 6)
    assert recipe["per_class_iou"]["car"] is None  # never in the labels nor predicted
    older = recipe_results_file(tmp_path / "b.json", {"recipe": [0.3], "plain baseline": [0.2]})  # rows without them
    assert "curve" not in recipe_summary.summarize(recipe_summary.load_runs([older]))["recipe"]
    for row in report["rows"]:  # the same runs as controls beside ablations: the recipe's seeds (older) lack them
        row["extra"]["control"] = True
    path.write_text(json.dumps(report))
    from_controls = recipe_summary.summarize(recipe_summary.load_runs([older, path]))["recipe"]
    assert from_controls["miou"] == [0.3] and from_controls["curve"] == recipe["curve"]
    assert from_controls["confusion"] == recipe["confusion"] and from_controls["confusion_seeds"] == [0, 1]


def test_recipe_summary_pairs_an_ablation_with_the_control_of_its_own_sitting(tmp_path):
    from bench import recipe_summary

    first = recipe_results_file(tmp_path / "a.json", {"recipe": [0.30, 0.32, 0.34], "plain baseline": [0.2, 0.2, 0.2]})
    # A slower sitting: its own control of the recipe scored 0.28, 0.29, 0.30; the ablation 0.27, 0.28, 0.29.
    second = recipe_results_file(tmp_path / "b.json", {"recipe": [0.28, 0.29, 0.30], "crops": [0.27, 0.28, 0.29],
                                                       "width": [0.27, 0.28]})
    report = json.loads(second.read_text())
    for row in report["rows"]:
        if row["name"].startswith("final model"):
            row["extra"]["control"] = True
    second.write_text(json.dumps(report))
    third = recipe_results_file(tmp_path / "c.json", {"scale-range": [0.26, 0.27]})  # no control: paired across
    summary = recipe_summary.summarize(recipe_summary.load_runs([first, second, third]))
    assert summary["recipe"]["miou"] == pytest.approx([0.30, 0.32, 0.34])  # controls do not replace the recipe's seeds
    assert summary["controls"] == {"seeds": [0, 1, 2], "miou": [0.28, 0.29, 0.30], "steps": [3000, 3001, 3002]}
    assert "| recipe, controls trained beside ablations | 0, 1, 2 | 28.0 / 29.0 / 30.0 | 3,000 / 3,001 / 3,002 |" in (
        recipe_summary.markdown(summary))
    crops, scale = summary["ingredients"]["crops"], summary["ingredients"]["scale-range"]
    assert crops["buys"] == pytest.approx([0.01] * 3) and crops["same_sitting"] == 3  # against 0.28-0.30, not 0.30-0.34
    assert crops["verdict"] == "does not pay"  # 1 point < the recipe's seed sd of 2
    assert summary["ingredients"]["width"]["buys"] == pytest.approx([0.01, 0.01])
    assert scale["buys"] == pytest.approx([0.04, 0.05]) and scale["same_sitting"] == 0
    assert scale["verdict"] == "pays (only 0 of 2 pairs from one sitting)"
    changed = json.loads(second.read_text())
    for row in changed["rows"]:  # the ablations taken out of another recipe than the control's
        row["extra"]["recipe"] = {"name": "cpu", "lr": 0.1 if row["extra"].get("control") else 0.2}
    second.write_text(json.dumps(changed))
    with pytest.raises(ValueError, match="recipe differs"):
        recipe_summary.load_runs([first, second])


def test_the_shipped_cpu_recipe_results_and_the_readme_table_are_what_their_bench_files_give():
    from bench import recipe_summary
    from pspnet_lib import reference

    shipped = reference.load("cpu_recipe")
    files = [PROJECT_ROOT / "bench" / "results" / name for name in shipped["files"]]
    summary = recipe_summary.summarize(recipe_summary.load_runs(files))
    assert {key: shipped[key] for key in summary} == json.loads(json.dumps(summary))
    assert shipped["command"] == "python -m bench.recipe_summary --write " + " ".join(
        f"bench/results/{name}" for name in shipped["files"])
    readme = (PROJECT_ROOT / "bench" / "README.md").read_text()
    assert readme.split(recipe_summary.BEGIN)[1].split(recipe_summary.END)[0].strip() == recipe_summary.markdown(summary)


def test_recipe_summary_refuses_files_it_cannot_pair(tmp_path, capsys):
    from bench import recipe_summary

    ours = recipe_results_file(tmp_path / "a.json", {"recipe": [0.3]})
    other = recipe_results_file(tmp_path / "b.json", {"crops": [0.3]}, cpu_model="Intel Xeon")
    quick = recipe_results_file(tmp_path / "q.json", {"recipe": [0.3]}, quick=True)
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**json.loads(ours.read_text()), "rows": [
        {"section": "recipe", "name": "final model mIoU, seed 0", "extra": {"seed": 0, "final_miou": 0.3}}]}))
    for files, message in (([ours, other], "b.json: another machine"), ([quick], "q.json: a --quick run"),
                           ([old], "old.json: scored before the standard labels"),
                           ([tmp_path / "missing.json"], "missing.json: not a readable bench results file")):
        assert recipe_summary.main([str(f) for f in files]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and message in error and "Traceback" not in error
    readme = tmp_path / "README.md"
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="no <!-- recipe-summary: begin -->"):
        recipe_summary.write_into_readme("table", readme)


def test_comparison_row_gives_the_ratio_of_means_with_the_seed_spread():
    from bench.recipe import comparison_row

    recipe = [{"seed": seed, "final_miou": miou, "final_miou_border_aware": miou + 0.03}
              for seed, miou in enumerate((0.30, 0.33, 0.36))]
    plain = [{"seed": seed, "final_miou": miou, "final_miou_border_aware": miou + 0.01}
             for seed, miou in enumerate((0.20, 0.22, 0.30))]
    row = comparison_row(recipe, plain, ["avx2", "avx512f"])
    assert row.value == pytest.approx(0.33 / 0.24) and row.unit == "x"
    assert row.target == f">= {targets.RECIPE_MIN_RATIO_TO_BASELINE:g}x" and row.met is True
    extra = row.extra
    assert extra["paired_ratios"] == pytest.approx([1.5, 1.5, 1.2]) and extra["ratio_range"] == pytest.approx([1.2, 1.5])
    assert extra["recipe"]["sd_miou"] == pytest.approx(0.03) and extra["baseline"]["mean_miou"] == pytest.approx(0.24)
    assert extra["ratio_border_aware"] == pytest.approx(0.36 / 0.25)
    assert extra["cpu_flags"] == ["avx2", "avx512f"] and "avx2 avx512f" in row.detail
    assert comparison_row(recipe, [dict(r, final_miou=0.3) for r in recipe], []).met is False  # 1.1x


@pytest.mark.slow
def test_recipe_section_trains_recipe_and_plain_baseline_for_every_seed_and_compares_them(synthetic_pairs, tmp_path):
    from bench.recipe import RecipeSetup, recipe_rows
    from pspnet_lib import data, metrics

    setup = RecipeSetup(synthetic_pairs, budget_minutes=0.02, train_pairs=8, val_pairs=4, image_size=64,
                        batch_size=4, seeds=(0, 1))
    rows = list(recipe_rows(setup, tmp_path, cpu_flags=["avx2"]))
    per_seed = [
        "final model mIoU, seed {}", "final model pixel accuracy, seed {}",
        "train images/s (everything in the budget), seed {}",
        "plain baseline final mIoU, seed {}", "plain baseline train images/s, seed {}",
    ]
    assert [row.name for row in rows] == [
        *(name.format(seed) for seed in (0, 1) for name in per_seed), "recipe / plain baseline, mean final mIoU"
    ]
    assert all(row.section == "recipe" for row in rows)
    recipe, plain = rows[0].extra, rows[3].extra
    for result in (recipe, plain):  # both systems, scored on both label decodings
        assert 0 <= result["final_miou"] <= 1 and 0 <= result["final_miou_border_aware"] <= 1
        assert result["steps"] >= 1 and result["seconds"] > 0
    assert rows[2].value == pytest.approx(recipe["steps"] * 4 / recipe["seconds"])
    for result in (recipe, plain):  # what notebook 06 shows of the real pairs: the final model's counts per class
        confusion = np.array(result["final_confusion"])
        assert confusion.shape == (19, 19) and metrics.mean_iou(confusion) == pytest.approx(result["final_miou"])
        assert list(result["final_per_class_iou"]) == list(data.CLASS_NAMES)
    assert [row["epoch"] for row in recipe["curve"]] == list(range(1, recipe["epochs"] + 1))  # and its learning curve
    assert {"train_minutes", "loss", "val_logits_miou"} <= set(recipe["curve"][-1])
    assert rows[4].value == pytest.approx(plain["steps"] * 4 / plain["seconds"])
    comparison = rows[-1].extra
    assert comparison["labels"] == "standard" and comparison["cpu_flags"] == ["avx2"]
    assert comparison["recipe"]["seeds"] == comparison["baseline"]["seeds"] == [0, 1]
    assert len(comparison["recipe"]["miou"]) == len(comparison["baseline"]["miou"]) == 2
    assert comparison["recipe"]["miou"][0] == recipe["final_miou"] and comparison["baseline"]["miou"][0] == plain["final_miou"]
    if comparison["ratio"] is not None:  # a baseline at exactly 0 mIoU after a few steps has no ratio
        assert rows[-1].value == pytest.approx(comparison["recipe"]["mean_miou"] / comparison["baseline"]["mean_miou"])
    assert "ratio_sd" in comparison and "ratio_range" in comparison
    assert comparison["recipe"]["sd_miou"] is not None and comparison["baseline"]["sd_miou"] is not None
    json.dumps([row.extra for row in rows])  # JSON-ready


@pytest.mark.slow
def test_recipe_section_without_an_ingredient_trains_a_control_of_the_recipe_then_the_recipe_without_it(
    synthetic_pairs, tmp_path
):
    from bench.recipe import RecipeSetup, recipe_rows

    setup = RecipeSetup(synthetic_pairs, budget_minutes=0.02, train_pairs=8, val_pairs=4, image_size=64,
                        batch_size=4, seeds=(1,), without=("deadline-schedule",))
    rows = list(recipe_rows(setup, tmp_path))
    assert [row.name for row in rows] == [
        "final model mIoU, seed 1", "final model pixel accuracy, seed 1", "train images/s (everything in the budget), seed 1",
        "recipe without deadline-schedule final mIoU, seed 1",
    ]  # no plain baseline
    control = rows[0].extra
    assert control["control"] is True and control["without"] is None and control["changes"] == {}
    assert json.loads((tmp_path / "control-seed1" / "config.json").read_text())["recipe"]["lr_schedule"] == "poly"
    result = rows[-1].extra
    assert result["without"] == "deadline-schedule" and result["changes"] == {"lr_schedule": "constant"}
    assert result["recipe"]["lr_schedule"] == "poly" and result["recipe"]["name"] == "cpu"  # taken out of the recipe
    saved = json.loads((tmp_path / "without-deadline-schedule-seed1" / "config.json").read_text())["recipe"]
    assert saved["lr_schedule"] == "constant" and saved["seed"] == 1
    assert 0 <= result["final_miou"] <= 1 and "final_miou_border_aware" in result
    json.dumps(result)


@pytest.mark.slow
def test_plain_baseline_trains_the_recipes_network_with_a_constant_rate(synthetic_pairs):
    from bench.baseline import PLAIN_LEARNING_RATE, train_plain_baseline
    from pspnet_lib import models

    run = train_plain_baseline(synthetic_pairs, budget_minutes=0.001, image_size=64, batch_size=4, seed=0)
    assert models.network_spec(run.model) == models.NetworkSpec("pspnet", "small")
    assert run.steps >= 1 and run.seconds > 0
    assert float(run.model.optimizer.learning_rate) == pytest.approx(PLAIN_LEARNING_RATE)  # never annealed
