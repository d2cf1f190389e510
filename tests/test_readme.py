"""The README stays true: its notebook list matches notebooks/, and its two commands come first."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_lists_exactly_the_notebooks_on_disk() -> None:
    listed = set(re.findall(r"`(\d\d_[a-z0-9_]+\.ipynb)`", README))
    on_disk = {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert listed == on_disk, f"README lists {sorted(listed - on_disk)} not on disk; misses {sorted(on_disk - listed)}"


def test_the_two_setup_commands_come_before_anything_else_to_run() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make lab", "make test"]


def test_every_make_target_the_readme_mentions_exists() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    mentioned = set(re.findall(r"`make ([a-z][a-z-]*)", README))
    assert mentioned <= targets, f"README mentions make targets {sorted(mentioned - targets)} that do not exist"


def test_the_cpu_expectation_is_the_shipped_bench_summary() -> None:
    """The README's CPU figures are the recipe's and the plain baseline's means over the seeds of the bench summary
    the library ships (pspnet_lib/reference/cpu_recipe.json, re-created from bench/results/ by the command it records;
    tests/test_bench.py checks it against those files)."""
    from pspnet_lib import reference

    found = re.search(
        r"about \*\*(\d\.\d\d) mIoU and (\d\.\d\d) pixel accuracy\*\* under the standard scorer.*?\(mean of seeds "
        r"(\d+)-(\d+) .*?`pspnet_lib/reference/cpu_recipe\.json`.*?reached \*\*(\d\.\d\d)\*\*: the recipe is "
        r"\*\*(\d\.\d\d)x\*\* it",
        README, re.S,
    )
    assert found, "README's CPU expectation no longer quotes the shipped bench summary"
    measured = reference.load("cpu_recipe")
    recipe, baseline = measured["recipe"], measured["baseline"]
    assert found.groups() == (
        f"{recipe['mean']:.2f}", f"{recipe['mean_pixel_accuracy']:.2f}", str(min(recipe["seeds"])),
        str(max(recipe["seeds"])), f"{baseline['mean']:.2f}", f"{measured['ratio']:.2f}",
    )
