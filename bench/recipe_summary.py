"""`python -m bench.recipe_summary FILE ...`: the CPU recipe beside the plain baseline and without each ingredient.

Reads the recipe-section rows of the results files named (runs of `python -m bench --only recipe`, with or without
`--without`), which must come from one machine and one budget, and pairs them by seed: for each seed the latest file
wins. An ablation is paired with the recipe's control in its own file (same sitting) when there is one, else with the
recipe's own run of that seed, and its verdict says how many pairs came from one sitting. The recipe's seed noise is the sample sd of its final mIoU over seeds; an ingredient pays when taking it out
costs more mIoU, averaged over the seeds both ran, than that noise. Prints the Markdown table; `--write` also puts it
into bench/README.md between its `recipe-summary` markers and the summary into the library's reference results
(`pspnet_lib/reference/cpu_recipe.json`, which notebook 06 and the README quote). Every figure is standard-label
mIoU (the bench's scorer) but one column, the mean on border-aware labels for comparison.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from bench.recipe import INGREDIENTS, RecipeSetup, spread

BENCH_DIR = Path(__file__).resolve().parent
README = BENCH_DIR / "README.md"
REFERENCE = BENCH_DIR.parent / "pspnet_lib" / "reference" / "cpu_recipe.json"
BEGIN, END = "<!-- recipe-summary: begin -->", "<!-- recipe-summary: end -->"
RECIPE, BASELINE = "recipe", "plain baseline"
SEED_ROW = re.compile(r"^(final model|plain baseline final|recipe without (?P<without>[\w-]+) final) mIoU, seed \d+$")


@dataclass
class Runs:
    """Final-model results by system ("recipe", "plain baseline", "without <ingredient>") and seed, the file each came
    from, and the recipe's control runs by file (trained in the same sitting as that file's ablations)."""

    machine: dict
    budget_minutes: float | None
    files: list[str] = field(default_factory=list)
    results: dict[str, dict[int, dict]] = field(default_factory=dict)
    sources: dict[str, dict[int, str]] = field(default_factory=dict)
    controls: dict[str, dict[int, dict]] = field(default_factory=dict)


def system_of(row: dict) -> str | None:
    """Which system a results row scored, or None for rows that are not a seed's final mIoU."""
    match = SEED_ROW.match(row.get("name", ""))
    if row.get("section") != "recipe" or match is None:
        return None
    if match["without"]:
        return f"without {match['without']}"
    return RECIPE if row["name"].startswith("final model") else BASELINE


def machine_key(machine: dict) -> tuple:
    """What makes two results files' machines the same for this comparison."""
    return machine.get("cpu_model"), tuple(machine.get("cpu_flags", ())), machine.get("usable_cores")


def load_runs(paths: list[Path]) -> Runs:
    """The seeds' results of every file, later files replacing earlier seeds; ValueError naming a file that does not
    fit (unreadable, another machine or budget, quick mode, or an ablation of another recipe)."""
    runs: Runs | None = None
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable bench results file ({error})") from None
        options, machine = report.get("options", {}), report.get("machine", {})
        if options.get("quick"):
            raise ValueError(f"{path}: a --quick run (its numbers mean nothing); name full runs only")
        budget = options.get("budget_minutes")
        if runs is None:
            runs = Runs(machine, budget)
        elif machine_key(machine) != machine_key(runs.machine) or budget != runs.budget_minutes:
            raise ValueError(
                f"{path}: another machine or budget than {runs.files[0]} (CPU, flags, cores, --budget-minutes must match)"
            )
        found = 0
        for row in report.get("rows", []):
            system = system_of(row)
            if system is not None and row.get("extra"):
                if "final_miou_border_aware" not in row["extra"]:  # its final_miou is the border-aware score
                    raise ValueError(f"{path}: scored before the standard labels were the bench's scorer (issue 38)")
                seed = row["extra"]["seed"]
                if system == RECIPE and row["extra"].get("control"):  # the recipe beside this file's ablations
                    runs.controls.setdefault(str(path), {})[seed] = row["extra"]
                else:
                    runs.results.setdefault(system, {})[seed] = row["extra"]
                    runs.sources.setdefault(system, {})[seed] = str(path)
                found += 1
        if not found:
            raise ValueError(f"{path}: holds no seed of the recipe section")
        runs.files.append(str(path))
    if runs is None:
        raise ValueError("no results files named: expected bench/results/<time>.json files of `--only recipe` runs")
    check_same_recipe(runs)
    return runs


def check_same_recipe(runs: Runs) -> None:
    """ValueError when an ablation row took its ingredient out of another recipe than the recipe rows trained (rows
    that record their recipe are compared; older ones do not record it)."""
    systems = [*runs.results.items(), *((f"control in {Path(f).name}", c) for f, c in runs.controls.items())]
    recorded = [result["recipe"] for name, seeds in systems if name == RECIPE or name.startswith("control")
                for result in seeds.values() if "recipe" in result]
    for system, seeds in systems:
        for seed, result in seeds.items():
            if "recipe" in result and any(result["recipe"] != recipe for recipe in recorded):
                raise ValueError(f"{system}, seed {seed}: its recipe differs from the recipe rows' (the recipe changed "
                                 "between runs: re-run its seeds, or name only files of one recipe)")


def summarize(runs: Runs) -> dict:
    """Means and sds over seeds; the recipe / baseline ratio; per ingredient the paired mIoU it buys and a verdict."""
    def system(name: str) -> dict:
        seeds = runs.results.get(name, {})
        values = [seeds[seed]["final_miou"] for seed in sorted(seeds)]
        accuracy = [seeds[seed]["final_pixel_accuracy"] for seed in sorted(seeds)]
        border_aware = [seeds[seed]["final_miou_border_aware"] for seed in sorted(seeds)]
        part = {"seeds": sorted(seeds), "miou": values, "mean": statistics.fmean(values) if values else None,
                "sd": spread(values), "mean_pixel_accuracy": statistics.fmean(accuracy) if accuracy else None,
                "mean_border_aware": statistics.fmean(border_aware) if border_aware else None,
                "steps": [seeds[seed]["steps"] for seed in sorted(seeds)]}
        return part | real_statistics([seeds[seed] for seed in sorted(seeds)])

    recipe, baseline = system(RECIPE), system(BASELINE)
    controls = latest_controls(runs)
    if "curve" not in recipe:  # the recipe's own seeds predate these records: take them from its controls
        recipe |= real_statistics(controls)
    summary = {"files": [Path(f).name for f in runs.files], "cpu_model": runs.machine.get("cpu_model"),
               "cpu_flags": runs.machine.get("cpu_flags", []), "recipe": recipe, "baseline": baseline,
               "ratio": recipe["mean"] / baseline["mean"] if recipe["mean"] and baseline["mean"] else None,
               "controls": {"seeds": [c["seed"] for c in controls], "miou": [c["final_miou"] for c in controls],
                            "steps": [c["steps"] for c in controls]},
               "ingredients": {}}
    noise = recipe["sd"]
    for name in INGREDIENTS:
        ablated = runs.results.get(f"without {name}", {})
        partners = {seed: partner for seed in ablated if (partner := recipe_partner(runs, f"without {name}", seed))}
        paired = sorted(partners)
        if not paired:
            continue
        buys = [partners[seed][0]["final_miou"] - ablated[seed]["final_miou"] for seed in paired]
        mean_buys = statistics.fmean(buys)
        same_sitting = sum(partners[seed][1] for seed in paired)
        verdict = "too few seeds" if noise is None or len(paired) < 2 else ("pays" if mean_buys > noise else "does not pay")
        if verdict != "too few seeds" and same_sitting < len(paired):
            verdict += f" (only {same_sitting} of {len(paired)} pairs from one sitting)"
        summary["ingredients"][name] = {
            "seeds": paired, "miou": [ablated[seed]["final_miou"] for seed in paired],
            "mean_border_aware": statistics.fmean(ablated[seed]["final_miou_border_aware"] for seed in paired),
            "steps": [ablated[seed]["steps"] for seed in paired], "buys": buys,
            "mean_buys": mean_buys, "sd_buys": spread(buys), "same_sitting": same_sitting, "verdict": verdict,
        }
    return summary


def recipe_partner(runs: Runs, system: str, seed: int) -> tuple[dict, bool] | None:
    """The recipe run an ablation's seed is paired with, and whether it ran in the same sitting: the control of the
    ablation's own file when it has one (the machine's speed drifts between sittings, and with it the steps a budget
    buys), else the recipe's own run of that seed; None when neither exists."""
    control = runs.controls.get(runs.sources[system][seed], {}).get(seed)
    if control is not None:
        return control, True
    recipe = runs.results.get(RECIPE, {}).get(seed)
    return None if recipe is None else (recipe, False)


def latest_controls(runs: Runs) -> list[dict]:
    """The recipe's control runs, one per seed (the latest file's), by seed."""
    by_seed = {}
    for file in runs.files:
        by_seed |= runs.controls.get(file, {})
    return [by_seed[seed] for seed in sorted(by_seed)]


def real_statistics(results: list[dict]) -> dict:
    """What the notebooks show of the real pairs, when every seed's row records it (older files do not): the first
    seed's learning curve (`curve`, its seed `curve_seed`), and per class the IoU of the seeds' summed confusion counts
    (`per_class_iou`, None for a class no seed met) with those counts (`confusion`, rows: truth) and their seeds."""
    import numpy as np

    from pspnet_lib.data import CLASS_NAMES
    from pspnet_lib.metrics import SegmentationScores

    found = {}
    if results and all("curve" in result for result in results):
        found |= {"curve": results[0]["curve"], "curve_seed": results[0]["seed"]}
    if results and all("final_confusion" in result for result in results):
        found["confusion_seeds"] = [result["seed"] for result in results]
        confusion = sum(np.array(result["final_confusion"], dtype=np.int64) for result in results)
        found["per_class_iou"] = SegmentationScores.from_confusion(confusion).as_dict(CLASS_NAMES)["per_class_iou"]
        found["confusion"] = confusion.tolist()
    return found


def markdown(summary: dict) -> str:
    """The summary as bench/README.md's table (mIoU in points, standard labels)."""
    def points(value: float | None, signed: bool = False) -> str:
        return "" if value is None else f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"

    def steps(part: dict) -> str:
        return " / ".join(f"{count:,}" for count in part["steps"])

    def mean_sd(part: dict) -> str:
        return f"{points(part['mean'])} ± {points(part['sd'])}" if part["sd"] is not None else points(part["mean"])

    recipe, baseline = summary["recipe"], summary["baseline"]
    lines = [
        "| system | seeds | final mIoU per seed | training steps per seed | mean ± sd | mean, border-aware labels "
        "| what the ingredient buys (recipe − this, per seed; mean) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, part in ((RECIPE, recipe), (BASELINE, baseline)):
        lines.append(f"| {name} | {', '.join(map(str, part['seeds']))} | {' / '.join(points(v) for v in part['miou'])} "
                     f"| {steps(part)} | {mean_sd(part)} | {points(part['mean_border_aware'])} | | |")
    controls = summary.get("controls", {})
    if controls.get("seeds"):
        lines.append(f"| recipe, controls trained beside ablations | {', '.join(map(str, controls['seeds']))} | "
                     f"{' / '.join(points(v) for v in controls['miou'])} | {steps(controls)} | | | | |")
    for name, part in summary["ingredients"].items():
        lines.append(
            f"| without {name}: {INGREDIENTS[name].without} | {', '.join(map(str, part['seeds']))} | "
            f"{' / '.join(points(v) for v in part['miou'])} | {steps(part)} | | {points(part['mean_border_aware'])} | "
            f"{' / '.join(points(v, True) for v in part['buys'])}; {points(part['mean_buys'], True)} | {part['verdict']} |"
        )
    ratio = "" if summary["ratio"] is None else f"{summary['ratio']:.2f}x"
    noise = "" if recipe["sd"] is None else f" The recipe's seed noise (sd over its seeds) is {points(recipe['sd'])} points."
    lines += ["", f"Recipe / plain baseline, mean final mIoU: **{ratio}**.{noise} Machine: {summary['cpu_model']}, "
              f"flags {' '.join(summary['cpu_flags'])}. Files: {', '.join(summary['files'])}."]
    return "\n".join(lines)


def write_into_readme(table: str, readme: Path = README) -> None:
    """Replace what lies between the markers of `readme` with `table`; ValueError when the markers are missing."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme}: no {BEGIN} ... {END} markers to write the table between")
    head, rest = text.split(BEGIN, 1)
    readme.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")


def write_reference(summary: dict, path: Path = REFERENCE) -> None:
    """The summary as the library's reference results, with the command that re-creates it."""
    files = " ".join(f"bench/results/{name}" for name in summary["files"])
    setup = {item.name: item.default for item in fields(RecipeSetup) if item.name not in ("data", "seeds", "without")}
    record = {"command": f"python -m bench.recipe_summary --write {files}", "labels": "standard", **setup, **summary}
    path.write_text(json.dumps(record, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recipe_summary", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path, help="bench/results/<time>.json files of `--only recipe` runs")
    parser.add_argument("--write", action="store_true", help="also write the table into bench/README.md")
    args = parser.parse_args(argv)
    try:
        summary = summarize(load_runs(args.files))
        table = markdown(summary)
        if args.write:
            write_into_readme(table)
            write_reference(summary)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
