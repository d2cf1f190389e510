"""Run-wide settings read from the environment: fast mode, where data lives, whether a GPU is visible,
whether a download server can be reached, and TensorFlow's fast CPU kernels."""

from __future__ import annotations

import os
import platform
import socket
import sys
import threading
from pathlib import Path

FAST_ENV = "PSPNET_FAST"
DATA_ENV = "PSPNET_DATA_DIR"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
X86_MACHINES = {"x86_64", "amd64"}


FAST_ON = ("1", "true", "yes", "on")
FAST_OFF = ("", "0", "false", "no", "off")


def fast_mode() -> bool:
    """True when `PSPNET_FAST` is set to 1/true/yes/on (CI sets it): shrink data and steps.

    Unset or 0/false/no/off means off; any other value is a ValueError naming it, not a silent "off".
    """
    value = os.environ.get(FAST_ENV, "").strip().lower()
    if value not in FAST_ON + FAST_OFF:
        raise ValueError(
            f"{FAST_ENV}={os.environ[FAST_ENV]!r}: expected one of {', '.join(FAST_ON)} (fast mode) or "
            f"0, false, no, off or unset (default mode)"
        )
    return value in FAST_ON


def prefer_onednn_kernels() -> None:
    """Ask TensorFlow for its oneDNN CPU kernels on x86-64, unless `TF_ENABLE_ONEDNN_OPTS` is already set.

    TensorFlow turns them on by itself only on CPUs with AVX-512 deep-learning instructions, not on most
    laptops or AMD CPUs; there they train the small PSPNet about 1.4x faster (dilated convolutions about 2x;
    bench/README.md). Takes effect only before TensorFlow is imported, so `import pspnet_lib` calls it first.
    """
    if platform.machine().lower() in X86_MACHINES and "tensorflow" not in sys.modules:
        os.environ.setdefault(ONEDNN_ENV, "1")


def data_root() -> Path:
    """Folder for downloaded and generated data: `$PSPNET_DATA_DIR`, else `data/` in the checkout or cwd."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / "data"
    return Path.cwd() / "data"


def host_reachable(address: tuple[str, int], timeout: float) -> bool:
    """True when `address` (host, port) accepts a connection within `timeout` s, name lookup included; never waits longer."""
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    outcome: dict[str, bool] = {}

    def connect() -> None:
        """Resolve and connect (the lookup itself ignores socket time-outs, hence this thread)."""
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome["reached"] = True
        except OSError:
            outcome["reached"] = False

    worker = threading.Thread(target=connect, name=f"reachable-{address[0]}", daemon=True)
    worker.start()
    worker.join(timeout)
    return outcome.get("reached", False)


def gpu_count() -> int:
    """Number of GPUs TensorFlow can see (imports TensorFlow)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def import_tensorflow_quietly():
    """Import and return TensorFlow with its start-up notices silenced.

    TF_CPP_MIN_LOG_LEVEL=2 hides most C++ log lines, but TensorFlow 2.21 still writes a oneDNN notice to
    file descriptor 2 before its logging starts (a notebook shows it as a red stderr block). The import is
    done once with that descriptor pointed at /dev/null; later imports reuse the loaded module.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
    finally:
        os.dup2(saved_stderr, 2)
        os.close(devnull)
        os.close(saved_stderr)
    return tf
