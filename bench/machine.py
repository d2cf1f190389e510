"""The machine a benchmark ran on: CPU model and instruction-set flags, cores, GPUs and library versions."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# The instruction-set extensions TensorFlow's CPU kernels (oneDNN) choose between: wider vectors and matrix units make
# the same recipe take more steps in its budget, so results from two CPUs compare only with these known.
ISA_FLAG_PREFIXES = ("avx2", "avx512", "amx")
VERSIONED_PACKAGES = (
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "pillow",
    "nbclient",
    "jupyter-client",
    "ipykernel",
)


def cpu_model_from_cpuinfo(text: str) -> str | None:
    """The first "model name" of a /proc/cpuinfo text (x86), else its "Hardware"/"Processor" line, else None."""
    for key in ("model name", "hardware", "processor"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip().lower() == key and value.strip() and not value.strip().isdigit():
                return value.strip()
    return None


def cpu_isa_flags_from_cpuinfo(text: str) -> list[str]:
    """The `ISA_FLAG_PREFIXES` flags (avx2, avx512*, amx*) of the first "flags" line of a /proc/cpuinfo text, sorted."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "flags":
            return sorted(flag for flag in set(value.split()) if flag.startswith(ISA_FLAG_PREFIXES))
    return []


def cpu_isa_flags() -> list[str]:
    """This CPU's avx2/avx512*/amx* flags (empty where /proc/cpuinfo is missing or has none, e.g. ARM)."""
    try:
        return cpu_isa_flags_from_cpuinfo(CPUINFO.read_text())
    except OSError:
        return []


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what `platform` says elsewhere."""
    try:
        found = cpu_model_from_cpuinfo(CPUINFO.read_text())
    except OSError:
        found = None
    return found or platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def installed_versions(packages: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Version of each installed distribution among `packages` (missing ones left out), plus Python's."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN CPU kernels (`import pspnet_lib`, before TensorFlow, asks for them on x86-64)."""
    from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own answer; no public API says it

    return bool(_pywrap_util_port.IsMklEnabled())


def describe_gpus() -> list[dict[str, Any]]:
    """Name and compute capability of every GPU TensorFlow sees (empty without one)."""
    from pspnet_lib.training import visible_gpus

    return [
        {"name": gpu.name, "compute_capability": list(gpu.compute_capability or [])} for gpu in visible_gpus()
    ]


def describe_machine(gpus: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """CPU model and instruction-set flags, logical and usable cores, GPUs, oneDNN kernels on or off, OS, executable
    and library versions."""
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_isa_flags(),
        "logical_cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "gpus": describe_gpus() if gpus is None else gpus,
        "tensorflow_onednn": onednn_enabled(),
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "versions": installed_versions(),
    }
