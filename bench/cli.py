"""`python -m bench`: run the chosen sections, print the Markdown table, write the JSON under bench/results/."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import describe_machine
from bench.results import SECTIONS, Report, Row, markdown_table, write_report

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_BUDGET_MINUTES = 3.0
QUICK_BUDGET_MINUTES = 0.1
RECIPE_BUDGET_MINUTES = 10.0  # the budget for a CPU student
RECIPE_SEEDS = (0, 1, 2)


def parse_sections(text: str | None) -> tuple[str, ...]:
    """The --only text as sections in canonical order ("notebooks,pipeline" -> pipeline, notebooks); empty: all."""
    if not text:
        return SECTIONS
    asked = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(asked) - set(SECTIONS))
    if unknown or not asked:
        raise argparse.ArgumentTypeError(f"--only takes sections from {', '.join(SECTIONS)}; got {text!r}")
    return tuple(section for section in SECTIONS if section in asked)


def positive_minutes(text: str) -> float:
    """--budget-minutes as a positive float."""
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise argparse.ArgumentTypeError(
            f"--budget-minutes must be a positive number of minutes, got {text!r}"
        )
    return minutes


def seed_list(text: str) -> tuple[int, ...]:
    """--seeds as a tuple of ints ("0,1,2")."""
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        seeds = ()
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, e.g. 0,1,2; got {text!r}")
    return seeds


def ingredient_list(text: str) -> tuple[str, ...]:
    """--without as ingredient names ("all": every one)."""
    from bench.recipe import INGREDIENTS

    names = tuple(INGREDIENTS) if text.strip() == "all" else tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(set(names) - set(INGREDIENTS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"--without takes some of {', '.join(INGREDIENTS)} (or all); got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        type=parse_sections,
        default=SECTIONS,
        metavar="SECTION[,SECTION]",
        help=f"run only these sections ({', '.join(SECTIONS)}); default: all",
    )
    parser.add_argument(
        "--budget-minutes",
        type=positive_minutes,
        default=None,
        help=f"training budget per model in the learning section (default {DEFAULT_BUDGET_MINUTES:g}) and per "
        f"seed in the recipe section (default {RECIPE_BUDGET_MINUTES:g}); {QUICK_BUDGET_MINUTES:g} with --quick",
    )
    parser.add_argument(
        "--seeds", type=seed_list, default=RECIPE_SEEDS, metavar="N[,N]",
        help="seeds of the recipe section (default 0,1,2)",
    )
    parser.add_argument(
        "--without", type=ingredient_list, default=(), metavar="NAME[,NAME]",
        help="recipe section: for every seed, the recipe itself (a control) and then the recipe without each of these "
        "ingredients, no baseline (all: every one; see bench/recipe.py's INGREDIENTS); python -m bench.recipe_summary "
        "pairs each with the control of its sitting",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes and steps: a smoke check, not a measurement"
    )
    parser.add_argument("--output", type=Path, help="results file (default bench/results/<UTC time>.json)")
    parser.add_argument(
        "--notes", default="", help="free text stored with the results (e.g. 'CPU shared with ...')"
    )
    return parser


def default_output(created: datetime, quick: bool) -> Path:
    """bench/results/<UTC time>[-quick].json."""
    return RESULTS_DIR / f"{created:%Y%m%d-%H%M%S}{'-quick' if quick else ''}.json"


def quick_dataset(folder: Path) -> Path:
    """A tiny synthetic dataset (8 train / 4 val pairs) for --quick runs."""
    from pspnet_lib.data import write_synthetic_dataset

    return write_synthetic_dataset(folder / "synthetic", num_train=8, num_val=4, seed=0)


def mixed_precision_policies(gpus: list[dict]) -> tuple[str, ...]:
    """float32, plus the GPU's mixed policy (bfloat16 from Ampere on, else float16) when a GPU is visible."""
    if not gpus:
        return ("float32",)
    from pspnet_lib.training import DeviceSwitches, GpuInfo, plan_devices

    infos = [GpuInfo(gpu["name"], tuple(gpu["compute_capability"]) or None) for gpu in gpus]
    return ("float32", plan_devices(infos, DeviceSwitches(mixed_precision=True)).precision)


def run_pipeline(args: argparse.Namespace, scratch: Path, machine: dict) -> list[Row]:
    """The data pipeline section (real pairs when present, else the synthetic city)."""
    from bench.pipeline import pipeline_rows
    from pspnet_lib.data import default_dataset

    if args.quick:
        return pipeline_rows(quick_dataset(scratch), size=64, tf_data_files=8, loop_files=1)
    return pipeline_rows(default_dataset(), size=256)


def run_training(args: argparse.Namespace, scratch: Path, machine: dict) -> list[Row]:
    """The training-step / inference section."""
    from bench.throughput import throughput_cases, training_rows

    precisions = mixed_precision_policies(machine["gpus"])
    if args.quick:
        return training_rows(throughput_cases(("small",), (64,), precisions, quick=True), matmul_size=256)
    return training_rows(throughput_cases(("small", "resnet50"), (128, 256), precisions, quick=False))


def run_learning(args: argparse.Namespace, scratch: Path, machine: dict) -> list[Row]:
    """The equal-budget learning section on the synthetic city."""
    from bench.learning import LearningSetup, learning_rows
    from pspnet_lib.data import ensure_synthetic_dataset

    if args.quick:
        budget = args.budget_minutes or QUICK_BUDGET_MINUTES
        return learning_rows(LearningSetup(quick_dataset(scratch), budget, image_size=64, batch_size=4))
    return learning_rows(
        LearningSetup(ensure_synthetic_dataset(), args.budget_minutes or DEFAULT_BUDGET_MINUTES)
    )


def run_recipe(args: argparse.Namespace, scratch: Path, machine: dict) -> Iterable[Row]:
    """The CPU recipe beside the plain baseline on the real pairs, 3 seeds of 10 minutes each (nothing without the real
    pairs)."""
    from bench.recipe import RecipeSetup, recipe_rows
    from pspnet_lib.data import find_cityscapes_pairs

    if args.quick:
        setup = RecipeSetup(quick_dataset(scratch), args.budget_minutes or QUICK_BUDGET_MINUTES, 8, 4, 64, 4, (0,), args.without)
        return recipe_rows(setup, scratch / "recipe", machine.get("cpu_flags"))
    real = find_cityscapes_pairs()
    if real is None:
        print("Section recipe: the real pairs are not here (see README 'Getting the real set'); skipped.", file=sys.stderr)
        return []
    setup = RecipeSetup(real, args.budget_minutes or RECIPE_BUDGET_MINUTES, seeds=args.seeds, without=args.without)
    return recipe_rows(setup, scratch / "recipe", machine.get("cpu_flags"))


def run_notebooks(args: argparse.Namespace, scratch: Path, machine: dict) -> Iterable[Row]:
    """The notebook suite section (fast mode only with --quick)."""
    from bench.notebooks import MODES, notebook_rows

    return notebook_rows(PROJECT_ROOT / "notebooks", modes=("fast",) if args.quick else MODES)


SECTION_RUNNERS: dict[str, Callable[[argparse.Namespace, Path, dict], Iterable[Row]]] = {
    "pipeline": run_pipeline,
    "training": run_training,
    "learning": run_learning,
    "recipe": run_recipe,
    "notebooks": run_notebooks,
}


def real_pairs_found() -> bool:
    """True when the real Cityscapes pairs are on this machine."""
    from pspnet_lib.data import find_cityscapes_pairs

    return find_cityscapes_pairs() is not None


def unmeasured_notes(args: argparse.Namespace, machine: dict) -> list[str]:
    """What this run leaves out: skipped sections, GPU rows without a GPU, the reduced sizes of --quick."""
    notes = [f"section {section}: not run (--only)" for section in SECTIONS if section not in args.only]
    if not machine["gpus"]:
        notes.append("mixed precision on/off rows: no GPU visible, float32 on the CPU only")
    if "recipe" in args.only and not args.quick and not real_pairs_found():
        notes.append("section recipe: the real pairs were not found, so the CPU recipe was not measured")
    if args.quick:
        notes.append("--quick: tiny sizes and single steps, a smoke check only; the numbers mean nothing")
    return notes


def start_report(args: argparse.Namespace, argv: list[str]) -> Report:
    """An empty report carrying the machine, the options and the notes."""
    machine = describe_machine()
    machine["load_average_at_start"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    options = {"only": list(args.only), "budget_minutes": args.budget_minutes, "quick": args.quick, "seeds": list(args.seeds),
               "without": list(args.without)}
    return Report(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        command=shlex.join(["python", "-m", "bench", *argv]),
        machine=machine,
        options=options,
        notes=args.notes,
        unmeasured=unmeasured_notes(args, machine),
    )


def interruption_note(section: str, rows_so_far: int, reason: str) -> str:
    """The `unmeasured` entry of a run stopped part-way."""
    return f"run interrupted ({reason}) during section {section} after {rows_so_far} rows: later rows not measured"


def stop_on_signals(stop: threading.Event) -> None:
    """On SIGTERM or SIGINT set `stop` and raise KeyboardInterrupt (the flag survives code that swallows it)."""

    def interrupt(signum: int, frame: object) -> None:
        stop.set()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, interrupt)


def run_sections(
    args: argparse.Namespace, report: Report, output: Path, stop: threading.Event | None = None
) -> None:
    """Run the chosen sections, rewriting the results file after every row (an interrupted run keeps its rows).

    A row finished after `stop` was set is dropped: the interruption may have cut it short.
    """
    stop = stop or threading.Event()
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        for section in args.only:
            print(f"Running section {section} ...", file=sys.stderr, flush=True)
            try:
                for row in SECTION_RUNNERS[section](args, Path(folder), report.machine):
                    if stop.is_set():
                        raise KeyboardInterrupt("stop requested")
                    report.rows.append(row)
                    write_report(report, output)
            except KeyboardInterrupt as stop:
                report.unmeasured.append(interruption_note(section, len(report.rows), str(stop) or "SIGINT"))
                write_report(report, output)
                raise


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, keep the JSON under bench/results/ (exit status 130 when interrupted)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    report = start_report(args, argv)
    output = args.output or default_output(datetime.fromisoformat(report.created), args.quick)
    write_report(report, output)
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        run_sections(args, report, output, stop)
    except KeyboardInterrupt:
        print(f"Interrupted; the rows measured so far are in {output}", file=sys.stderr)
        return 130
    print(markdown_table(report.rows))
    print(f"\nWritten to {output}", file=sys.stderr)
    return 0
