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


def test_the_cpu_expectation_is_the_bench_results_file_it_names() -> None:
    """The README's CPU figures are the mean final-model scores of the recipe rows of the results file it cites."""
    import json
    import statistics

    found = re.search(
        r"about \*\*(\d\.\d\d) mIoU and (\d\.\d\d) pixel accuracy\*\* under the standard scorer.*?`(bench/results/[\w-]+\.json)`",
        README, re.S,
    )
    assert found, "README's CPU expectation no longer names its bench results file"
    rows = [row for row in json.loads((ROOT / found[3]).read_text())["rows"] if row["section"] == "recipe"]
    miou = statistics.fmean(row["value"] for row in rows if row["name"].startswith("final model mIoU"))
    accuracy = statistics.fmean(row["value"] for row in rows if row["name"].startswith("final model pixel accuracy"))
    assert (found[1], found[2]) == (f"{miou:.2f}", f"{accuracy:.2f}")
