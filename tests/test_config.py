"""Run-wide settings: fast mode, the data folder, and a quiet TensorFlow import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pspnet_lib import config


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_fast_mode_reads_the_environment(monkeypatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("PSPNET_FAST", value)
    assert config.fast_mode() is expected


def test_data_root_prefers_the_environment_variable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PSPNET_DATA_DIR", str(tmp_path))
    assert config.data_root() == tmp_path


def test_data_root_defaults_to_the_checkout(monkeypatch) -> None:
    monkeypatch.delenv("PSPNET_DATA_DIR", raising=False)
    assert config.data_root() == Path(__file__).resolve().parent.parent / "data"


def test_tensorflow_imports_without_writing_to_stderr() -> None:
    code = "from pspnet_lib.config import import_tensorflow_quietly as q; tf = q(); print(tf.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().startswith("2.")
    assert result.stderr == ""


def test_stderr_still_works_after_the_quiet_import() -> None:
    code = (
        "import os, sys\nfrom pspnet_lib.config import import_tensorflow_quietly as q\nq()\n"
        "sys.stderr.write('after\\n'); sys.stderr.flush(); os.write(2, b'fd2\\n')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stderr == "after\nfd2\n"
