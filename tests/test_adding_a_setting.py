"""CONTRIBUTING.md's worked example keeps its word: a new setting is two files, and the rest follows from the field.

The test applies the example's diff to a copy of the library and, in a fresh process, checks that the command
line has the flag (with its check and message), that config.json holds the setting, that a resumed run must keep
it, and that the loss uses it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHECKS = r'''
import json, sys
from pathlib import Path
import numpy as np
from pspnet_lib.config import import_tensorflow_quietly
import_tensorflow_quietly()
from pspnet_lib.cli import main
from pspnet_lib.training import TrainConfig, configure, run_folder, segmentation_loss
from pspnet_lib.training.recipes import loss_options

work = Path(sys.argv[1])
import pspnet_lib
assert Path(pspnet_lib.__file__).parent == work / "copy" / "pspnet_lib", pspnet_lib.__file__  # the patched copy
try:
    main(["train", "--help"])
except SystemExit:
    pass
config = configure(work / "run", label_smoothing=0.1)
saved = config.as_dict()
assert saved["recipe"]["label_smoothing"] == 0.1 and TrainConfig.from_dict(saved) == config
try:
    configure(work / "run", label_smoothing=-1.0)
    raise AssertionError("a negative label_smoothing was accepted")
except ValueError as error:
    print("library error:", error)
print("cli status:", main(["train", "--out", str(work / "cli"), "--label-smoothing", "-1"]))
(work / "run" / "backup").mkdir(parents=True)
saved["recipe"]["label_smoothing"] = 0.2
(work / "run" / "config.json").write_text(json.dumps(saved))
try:
    run_folder.check_run_dir(config)
    raise AssertionError("a resume with another label_smoothing was accepted")
except ValueError as error:
    print("resume error:", error)
labels = np.zeros((1, 4, 4), "int32")
logits = np.random.default_rng(0).normal(size=(1, 4, 4, 19)).astype("float32")
smoothed = segmentation_loss(**loss_options(config.recipe))
plain = segmentation_loss(**loss_options(config.recipe.override(label_smoothing=0.0)))
print("loss options:", sorted(loss_options(config.recipe)))
print("losses differ:", float(smoothed(labels, logits)) != float(plain(labels, logits)))
'''


def worked_example() -> str:
    """The ```diff block of CONTRIBUTING.md's "Adding a setting" section."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    section = text[text.index("### Adding a setting"):]
    return re.search(r"```diff\n(.*?)```", section, re.DOTALL).group(1)


def test_the_worked_example_touches_two_files():
    touched = re.findall(r"^\+\+\+ b/(\S+)", worked_example(), re.MULTILINE)
    assert touched == ["pspnet_lib/training/losses.py", "pspnet_lib/training/recipes.py"]


def test_a_new_recipe_field_brings_its_flag_check_config_json_resume_check_and_loss(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "pspnet_lib", copy / "pspnet_lib", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "example.diff").write_text(worked_example())
    applied = subprocess.run(["git", "apply", "example.diff"], cwd=copy, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr  # the example still applies to today's library
    env = {**os.environ, "PYTHONPATH": str(copy), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", CHECKS, str(tmp_path)], cwd=copy, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    help_text = " ".join(done.stdout.split())
    assert "--label-smoothing LABEL_SMOOTHING share of each labelled pixel's target spread evenly" in help_text
    assert "library error: label_smoothing must be >= 0, got -1.0" in done.stdout
    assert "cli status: 1" in done.stdout
    assert "error: label_smoothing (--label-smoothing) must be >= 0, got -1.0" in done.stderr
    assert "resume error:" in done.stdout and "different label_smoothing" in done.stdout
    assert "loss options: ['jaccard_weight', 'label_smoothing']" in done.stdout
    assert "losses differ: True" in done.stdout
