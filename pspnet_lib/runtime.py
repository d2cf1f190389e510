"""Where a notebook runs (Google Colab, a Kaggle notebook or anywhere else) and what that runtime offers:
Kaggle credentials, a dataset attached to a Kaggle notebook, Google Drive for run folders that must
survive a disconnected runtime; and whether the notebooks' first cell left the kernel on mixed modules.

Standard library only at import: Google's `google.colab` module and the data package are imported inside
the functions that need them, so this module imports on any machine (a GPU server without Jupyter too).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

PLATFORMS = ("colab", "kaggle", "local")
PLATFORM_NAMES = {"colab": "Google Colab", "kaggle": "a Kaggle notebook", "local": "this machine"}
COLAB_MODULE = "google.colab"
KAGGLE_NOTEBOOK_ENV = "KAGGLE_KERNEL_RUN_TYPE"  # set in every Kaggle notebook (kagglehub tests the same)
KAGGLE_INPUT_ROOT = Path("/kaggle/input")
USERNAME_NAME, KEY_NAME = "KAGGLE_USERNAME", "KAGGLE_KEY"  # environment variables and Colab secret names
DRIVE_MOUNT_POINT = Path("/content/drive")
DRIVE_RUNS_FOLDER = Path("MyDrive") / "pspnet-course" / "runs"
MAX_INPUT_DEPTH = 5  # /kaggle/input/<owner or slug>/.../cityscapes_data/cityscapes_data/train
KAGGLE_API_PAGE = "kaggle.com > Settings > API > Create New Token"


RESTART_HOW = "Runtime > Restart session on Colab, Run > Restart & clear cell outputs on Kaggle, Kernel > Restart elsewhere"


class StopNotebook(RuntimeError):
    """Stops a notebook with one line: Jupyter shows the message instead of a traceback."""

    def _render_traceback_(self) -> list[str]:
        """IPython's hook for custom tracebacks: just the message."""
        return [f"Stopped: {self}"]


def optional_module(name: str) -> ModuleType | None:
    """The module `name` when it can be imported (e.g. `google.colab` on Colab), else None."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def detect_platform(environ: Mapping[str, str] | None = None) -> str:
    """"colab" when Google's Colab module is importable, "kaggle" inside a Kaggle notebook, else "local"."""
    environ = os.environ if environ is None else environ
    if optional_module(COLAB_MODULE) is not None:
        return "colab"
    if KAGGLE_NOTEBOOK_ENV in environ:
        return "kaggle"
    return "local"


def check_platform(platform: str) -> str:
    """`platform` when it is one of PLATFORMS; a ValueError naming the argument otherwise."""
    if platform not in PLATFORMS:
        raise ValueError(f"platform must be one of {PLATFORMS}, got {platform!r}")
    return platform


def describe_runtime(platform: str, gpu_names: Sequence[str]) -> str:
    """One line: the platform and the GPUs TensorFlow sees, e.g. "Google Colab with 1 GPU: Tesla T4"."""
    where = PLATFORM_NAMES[check_platform(platform)]
    if not gpu_names:
        return f"Running on {where} with no GPU visible to TensorFlow."
    counts: dict[str, int] = {}
    for name in gpu_names:
        counts[name] = counts.get(name, 0) + 1
    kinds = ", ".join(f"{count}x {name}" if count > 1 else name for name, count in counts.items())
    plural = "s" if len(gpu_names) > 1 else ""
    return f"Running on {where} with {len(gpu_names)} GPU{plural}: {kinds}."


@dataclass(frozen=True)
class KaggleCredentials:
    """A Kaggle user name and API key, and where they came from; the key never shows in a repr."""

    username: str
    key: str = field(repr=False)
    source: str = "environment"


def colab_secret(name: str) -> str | None:
    """The Colab secret `name` (stripped), or None when not on Colab, not set, or not shared with this notebook."""
    userdata = optional_module(f"{COLAB_MODULE}.userdata")
    if userdata is None:
        return None
    try:
        value = userdata.get(name)
    except Exception:  # noqa: BLE001 - SecretNotFoundError, NotebookAccessError, TimeoutException: all mean "none"
        return None
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def kaggle_credentials(environ: Mapping[str, str] | None = None) -> KaggleCredentials | None:
    """Kaggle credentials from $KAGGLE_USERNAME/$KAGGLE_KEY, else from the Colab secrets of the same names."""
    environ = os.environ if environ is None else environ
    username, key = environ.get(USERNAME_NAME, "").strip(), environ.get(KEY_NAME, "").strip()
    if username and key:
        return KaggleCredentials(username, key, "environment")
    username, key = colab_secret(USERNAME_NAME), colab_secret(KEY_NAME)
    if username and key:
        return KaggleCredentials(username, key, "Colab secrets")
    return None


def export_kaggle_credentials(credentials: KaggleCredentials, environ: MutableMapping[str, str] | None = None) -> None:
    """Put the credentials into the environment, where kagglehub looks for them."""
    environ = os.environ if environ is None else environ
    environ[USERNAME_NAME] = credentials.username
    environ[KEY_NAME] = credentials.key


def attached_kaggle_dataset(input_root: str | Path = KAGGLE_INPUT_ROOT) -> Path | None:
    """The first folder under `input_root` (a Kaggle notebook's inputs) holding train/ and val/, or None."""
    from pspnet_lib.data.locate import has_splits

    input_root = Path(input_root)
    if not input_root.is_dir():
        return None
    for depth in range(1, MAX_INPUT_DEPTH + 1):
        for folder in sorted(input_root.glob("/".join(["*"] * depth))):
            if folder.is_dir() and has_splits(folder):
                return folder
    return None


def how_to_get_real_pairs(platform: str, synthetic_switch: str | None = None) -> str:
    """One line on how to give this platform the real pairs (and, optionally, the switch that skips them)."""
    steps = {
        "colab": (
            f"add the Colab secrets {USERNAME_NAME} and {KEY_NAME} (key icon in the left bar; values from "
            f"{KAGGLE_API_PAGE}), let this notebook read them, and run this cell again"
        ),
        "kaggle": (
            "attach the dataset (Add Input > search 'dansbecker/cityscapes-image-pairs' > Add) or switch the "
            "notebook's Internet on, and run this cell again"
        ),
        "local": (
            f"set ${USERNAME_NAME} and ${KEY_NAME} (from {KAGGLE_API_PAGE}) or point $CITYSCAPES_PAIRS_DIR at "
            "an unzipped copy, and run this cell again"
        ),
    }[check_platform(platform)]
    skip = f", or set {synthetic_switch} = True to train on the synthetic city instead" if synthetic_switch else ""
    return f"No real Cityscapes pairs on {PLATFORM_NAMES[platform]}: {steps}{skip}."


def obtain_real_pairs(
    platform: str,
    *,
    input_root: str | Path = KAGGLE_INPUT_ROOT,
    environ: MutableMapping[str, str] | None = None,
    download: Callable[[], Path] | None = None,
    synthetic_switch: str | None = None,
) -> Path:
    """The real pairs' folder: found locally, attached to a Kaggle notebook, or downloaded with kagglehub.

    Without any of these it raises `StopNotebook` with one line saying how to get them. `download`
    defaults to `data.download_cityscapes_pairs` (kagglehub; in a Kaggle notebook it needs no credentials).
    """
    from pspnet_lib.data import DataError, download_cityscapes_pairs, find_cityscapes_pairs

    check_platform(platform)
    found = find_cityscapes_pairs()
    if found is None and platform == "kaggle":
        found = attached_kaggle_dataset(input_root)
    if found is not None:
        return found
    credentials = kaggle_credentials(environ)
    if credentials is None and platform != "kaggle":
        raise StopNotebook(how_to_get_real_pairs(platform, synthetic_switch))
    if credentials is not None:
        export_kaggle_credentials(credentials, environ)
    try:
        return (download or download_cityscapes_pairs)()
    except DataError as error:
        reason = str(error).split(". ")[0]
        raise StopNotebook(f"{reason}. {how_to_get_real_pairs(platform, synthetic_switch)}") from None


def mount_drive_runs(mount_point: str | Path = DRIVE_MOUNT_POINT, folder: str | Path = DRIVE_RUNS_FOLDER) -> Path:
    """Mount Google Drive (Colab asks for permission) and return its runs folder, created if needed."""
    drive = optional_module(f"{COLAB_MODULE}.drive")
    if drive is None:
        raise StopNotebook("Google Drive can be mounted only on Google Colab; keep runs on the local disk elsewhere.")
    drive.mount(str(mount_point))
    runs = Path(mount_point) / folder
    runs.mkdir(parents=True, exist_ok=True)
    return runs


def runs_folder(
    platform: str, keep_on_drive: bool, local_runs: str | Path, mount: Callable[[], Path] = mount_drive_runs
) -> Path:
    """Where run folders go: Google Drive on Colab when asked (a new runtime resumes from it), else `local_runs`."""
    if check_platform(platform) == "colab" and keep_on_drive:
        return mount()
    return Path(local_runs)


def gpu_run_dataset(platform: str, allow_synthetic: bool, synthetic_switch: str, **where) -> Path:
    """The dataset of a full GPU run: the real pairs (`obtain_real_pairs`), or the synthetic city only when allowed.

    Without the real pairs and without `allow_synthetic` (the student's explicit switch, named by
    `synthetic_switch`) it refuses with one line; `where` passes `input_root`, `environ`, `download` on.
    """
    from pspnet_lib.data import ensure_synthetic_dataset
    from pspnet_lib.data.locate import shown_path

    try:
        real = obtain_real_pairs(platform, synthetic_switch=synthetic_switch, **where)
        print(f"Using the real Cityscapes pairs at {shown_path(real)}.")
        return real
    except StopNotebook as refusal:
        if not allow_synthetic:
            raise
        print(f"{refusal} Training on the synthetic city, as {synthetic_switch} = True asks.")
        return ensure_synthetic_dataset()


def modules_needing_restart(
    modules: Mapping[str, object] | None = None,
    installed_version: Callable[[str], str] = importlib.metadata.version,
    distributions_of: Callable[[], Mapping[str, list[str]]] = importlib.metadata.packages_distributions,
) -> list[str]:
    """Packages this kernel imported at one version whose files on disk are now another ("keras 3.13.2 -> 3.15.1").

    A loaded top-level module's `__version__` is compared with the installed version of its distribution; a
    package installed or upgraded by a `%pip install` after the import shows up here (a module without a
    `__version__` attribute of its own is not checked).
    """
    modules = sys.modules if modules is None else modules
    owners = distributions_of()
    stale = []
    for name, module in sorted(modules.items()):
        loaded = getattr(module, "__dict__", {}).get("__version__")  # no lazy module __getattr__ (deprecations)
        if "." in name or not isinstance(loaded, str) or name not in owners:
            continue
        for distribution in owners[name]:
            try:
                on_disk = installed_version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
            if not same_version(loaded, on_disk):
                stale.append(f"{distribution} {loaded} -> {on_disk}")
    return sorted(set(stale))


def same_version(first: str, second: str) -> bool:
    """Whether two version strings name one release ("2.20.0" and "2.20"), by `packaging` when it is there."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return first == second
    try:
        return Version(first) == Version(second)
    except InvalidVersion:
        return first == second


def stop_if_restart_needed(stale: Sequence[str] | None = None) -> None:
    """After the first cell's install: stop with one line when it changed a package the kernel had imported."""
    stale = modules_needing_restart() if stale is None else stale
    if stale:
        raise StopNotebook(
            f"The course's install changed {', '.join(stale)}, which this kernel had already imported: restart "
            f"the runtime ({RESTART_HOW}), then run the notebook again from the top."
        )
