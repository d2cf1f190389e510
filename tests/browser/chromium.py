"""Which Chromium the browser tests drive, how it is launched, and what to do when it is missing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

CHROMIUM_PATH = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
]
FALSE_WORDS = {"", "0", "false", "no", "off"}


def running_in_ci(env: Mapping[str, str]) -> bool:
    """True when the `CI` variable is set to anything but an empty or false-like value."""
    return env.get("CI", "").strip().lower() not in FALSE_WORDS


def missing_chromium_outcome(
    chromium: Path = CHROMIUM_PATH, env: Mapping[str, str] = os.environ
) -> tuple[Literal["skip", "fail"], str] | None:
    """None if `chromium` can run; otherwise skip locally, fail under CI, with the reason to print."""
    if chromium.is_file() and os.access(chromium, os.X_OK):
        return None
    if running_in_ci(env):
        return "fail", (
            f"CI is set but no Chromium at {chromium}: the browser tests must run in CI. "
            "Install it (`make browser-deps`, i.e. apt-get install chromium) on the CI image."
        )
    return "skip", f"no Chromium at {chromium} (install it with `make browser-deps`); browser tests skipped"
