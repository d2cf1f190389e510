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
import re
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
TOKEN_NAME = "KAGGLE_API_TOKEN"  # kagglehub 1.x's preferred credential (environment or Colab secret), read first
DRIVE_MOUNT_POINT = Path("/content/drive")
DRIVE_RUNS_FOLDER = Path("MyDrive") / "pspnet-course" / "runs"
MAX_INPUT_DEPTH = 5  # /kaggle/input/<owner or slug>/.../cityscapes_data/cityscapes_data/train
KAGGLE_API_PAGE = "kaggle.com > Settings > API"


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
    """A Kaggle API token, or a user name and legacy API key, and where they came from; secrets never show in a repr."""

    username: str
    key: str = field(repr=False)
    source: str = "environment"
    token: str | None = field(default=None, repr=False)

    @property
    def names(self) -> str:
        """The variable or secret names these credentials came under."""
        return TOKEN_NAME if self.token else f"{USERNAME_NAME}/{KEY_NAME}"


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
    """Kaggle credentials in kagglehub 1.x's order: $KAGGLE_API_TOKEN, $KAGGLE_USERNAME/$KAGGLE_KEY, then the
    Colab secrets of the same names (token first)."""
    environ = os.environ if environ is None else environ
    token = environ.get(TOKEN_NAME, "").strip()
    if token:
        return KaggleCredentials("", "", "environment", token=token)
    username, key = environ.get(USERNAME_NAME, "").strip(), environ.get(KEY_NAME, "").strip()
    if username and key:
        return KaggleCredentials(username, key, "environment")
    token = colab_secret(TOKEN_NAME)
    if token:
        return KaggleCredentials("", "", "Colab secrets", token=token)
    username, key = colab_secret(USERNAME_NAME), colab_secret(KEY_NAME)
    if username and key:
        return KaggleCredentials(username, key, "Colab secrets")
    return None


def export_kaggle_credentials(credentials: KaggleCredentials, environ: MutableMapping[str, str] | None = None) -> None:
    """Put the credentials into the environment, where kagglehub looks for them."""
    environ = os.environ if environ is None else environ
    if credentials.token:
        environ[TOKEN_NAME] = credentials.token
        return
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
            f"add the Colab secret {TOKEN_NAME} (or the Colab secrets {USERNAME_NAME} and {KEY_NAME}; key icon "
            f"in the left bar, values from {KAGGLE_API_PAGE}), let this notebook read it, and run this cell again"
        ),
        "kaggle": (
            "attach the dataset (Add Input > search 'dansbecker/cityscapes-image-pairs' > Add) or switch the "
            "notebook's Internet on, and run this cell again"
        ),
        "local": (
            f"set ${TOKEN_NAME} (or ${USERNAME_NAME} and ${KEY_NAME}; from {KAGGLE_API_PAGE}) or point "
            "$CITYSCAPES_PAIRS_DIR at an unzipped copy, and run this cell again"
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
    from pspnet_lib.data import (
        CredentialsRejected,
        DataError,
        download_cityscapes_pairs,
        find_cityscapes_pairs,
    )

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
    except CredentialsRejected:
        raise StopNotebook(rejected_credentials(platform, credentials)) from None
    except DataError as error:
        reason = str(error).split(". ")[0]
        raise StopNotebook(f"{reason}. {how_to_get_real_pairs(platform, synthetic_switch)}") from None


def rejected_credentials(platform: str, credentials: KaggleCredentials | None) -> str:
    """One line when Kaggle refused the credentials: which ones, from where, and which to set instead."""
    where = "Colab secret" if check_platform(platform) == "colab" else "environment variable"
    used = f"the {credentials.names} from {credentials.source}" if credentials else "this notebook's credentials"
    return (
        f"Kaggle rejected {used} (expired or mistyped): create a new API token at {KAGGLE_API_PAGE} and set the "
        f"{where} {TOKEN_NAME} to it (or {USERNAME_NAME} and {KEY_NAME} to your user name and legacy key), then "
        "run this cell again."
    )


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


def student_photo(photo: str | Path | None, platform: str, upload_folder: str | Path) -> Path | None:
    """The photo a student asked to segment: `photo` (a path, which must be a file), else on Colab one uploaded now
    (Colab's upload button; saved into `upload_folder` under a name no other file has), else None.

    The image itself is read and checked by `data.read_photo`, which names the file when it is not a photo.
    """
    if photo is not None:
        path = Path(photo).expanduser()
        if not path.is_file():
            raise StopNotebook(f"PHOTO = {str(photo)!r}: no such file; give the path of a JPEG or PNG photo")
        return path
    if check_platform(platform) != "colab":
        return None
    files = optional_module(f"{COLAB_MODULE}.files")
    if files is None:
        raise StopNotebook("Colab's upload (google.colab.files) is missing here; set PHOTO to a file path instead.")
    uploaded = files.upload()  # {file name: bytes}; empty when the student cancels
    if not uploaded:
        return None
    name, content = next(iter(uploaded.items()))
    folder = Path(upload_folder)
    folder.mkdir(parents=True, exist_ok=True)
    target, number = folder / Path(name).name, 1
    while target.exists():  # never overwrite a file: an earlier upload of the same name keeps its own
        target, number = folder / f"{Path(name).stem}-{number}{Path(name).suffix}", number + 1
    target.write_bytes(content)
    return target


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


def installed_distributions() -> dict[str, str]:
    """Every installed distribution, normalized name -> version (what the first cell records before installing)."""
    return {normalize_name(d.name): d.version for d in importlib.metadata.distributions() if d.name}


def normalize_name(name: str) -> str:
    """A distribution name as pip compares them: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def modules_needing_restart(
    before: Mapping[str, str],
    modules: Mapping[str, object] | None = None,
    installed: Mapping[str, str] | None = None,
    distributions_of: Callable[[], Mapping[str, list[str]]] = importlib.metadata.packages_distributions,
) -> list[str]:
    """Packages an install changed (`before` -> now) whose modules this kernel had already imported.

    `before` maps distribution names to versions, recorded before the install (the first cell does it with
    plain `importlib.metadata`, the library not being there yet); a distribution upgraded, downgraded or
    removed since then counts when one of its top-level modules is in `modules` (default: sys.modules).
    Returns lines such as "keras 3.13.2 -> 3.15.1"; newly added packages never count.
    """
    modules = sys.modules if modules is None else modules
    installed = installed_distributions() if installed is None else installed
    before = {normalize_name(name): version for name, version in before.items() if name}
    changed = {name: (old, installed.get(name)) for name, old in before.items() if installed.get(name) != old}
    if not changed:
        return []
    stale = set()
    for module, owners in distributions_of().items():
        if module not in modules:
            continue
        for owner in map(normalize_name, owners):
            if owner in changed:
                old, new = changed[owner]
                stale.add(f"{owner} {old} -> {new or 'removed'}")
    return sorted(stale)


def stop_if_restart_needed(before: Mapping[str, str], **where) -> None:
    """After the first cell's install: stop with one line when it changed a package the kernel had imported.

    `before`: the installed distributions recorded before the install; `where` passes `modules`, `installed`
    and `distributions_of` on to `modules_needing_restart`.
    """
    stale = modules_needing_restart(before, **where)
    if stale:
        raise StopNotebook(
            f"The course's install changed {', '.join(stale)}, which this kernel had already imported: restart "
            f"the runtime ({RESTART_HOW}), then run the notebook again from the top."
        )
