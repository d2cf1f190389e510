"""Run-wide settings: fast mode, the data folder, and a quiet TensorFlow import."""

from __future__ import annotations

import os
import platform
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


ONEDNN_REPORT = (
    "import os, tensorflow\nfrom tensorflow.python.util import _pywrap_util_port as port\n"
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), port.IsMklEnabled())"
)


def _onednn_state(first_import: str, **env: str) -> str:
    """`<TF_ENABLE_ONEDNN_OPTS> <oneDNN on>` in a fresh Python that imports `first_import` before TensorFlow."""
    environ = {name: value for name, value in os.environ.items() if name != config.ONEDNN_ENV} | env
    code = f"import {first_import}\n{ONEDNN_REPORT}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=environ).stdout.strip()


@pytest.mark.skipif(platform.machine().lower() not in config.X86_MACHINES, reason="oneDNN is preferred on x86-64 only")
def test_importing_the_library_first_turns_on_tensorflows_onednn_kernels_on_x86() -> None:
    assert _onednn_state("pspnet_lib") == "1 True"
    assert _onednn_state("pspnet_lib", TF_ENABLE_ONEDNN_OPTS="0") == "0 False"  # the user's choice stands
    # Too late to matter: the library leaves the variable alone. Whether TensorFlow then uses oneDNN is its
    # own choice, which depends on the CPU (on by itself with AVX-512 deep-learning instructions): not asserted.
    assert _onednn_state("tensorflow, pspnet_lib").split()[0] == "None"
