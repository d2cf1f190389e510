"""Finding, resolving and downloading the Kaggle "Cityscapes Image Pairs" dataset (or falling back to the synthetic city)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from pspnet_lib.config import PROJECT_ROOT, data_root, host_reachable
from pspnet_lib.data.errors import CredentialsRejected, DataError
from pspnet_lib.data.pairs import PAIR_SUFFIXES
from pspnet_lib.data.synthetic import ensure_synthetic_dataset

DATASET_HANDLE = "dansbecker/cityscapes-image-pairs"
DATASET_URL = f"https://www.kaggle.com/datasets/{DATASET_HANDLE}"
PAIRS_DIR_ENV = "CITYSCAPES_PAIRS_DIR"
DATASET_CHOICE_ENV = "PSPNET_DATASET"  # "synthetic" forces the synthetic city (stored notebook outputs), "real" requires the pairs
DATASET_CHOICES = ("auto", "synthetic", "real")
KAGGLEHUB_CACHE_ENV = "KAGGLEHUB_CACHE"
KAGGLE_INPUT_DIR = Path("/kaggle/input/cityscapes-image-pairs")
KAGGLE_ADDRESS = ("www.kaggle.com", 443)
REJECTED_STATUSES = (401, 403)
REJECTED_ERRORS = ("UnauthenticatedError", "CredentialError")  # kagglehub.exceptions
NESTED_NAME = "cityscapes_data"
MAX_NESTING = 2  # X/train, X/cityscapes_data/train, X/cityscapes_data/cityscapes_data/train
SPLIT_NAMES = ("train", "val")


def how_to_get(offer_download_command: bool = True) -> str:
    """One sentence on the ways to obtain a dataset."""
    command = "with `python -m pspnet_lib data kaggle`, or " if offer_download_command else ""
    return (
        f"Download it {command}by hand from {DATASET_URL} (unzip into {shown_path(data_root() / NESTED_NAME)} or point "
        f"${PAIRS_DIR_ENV} at it), or use the synthetic city (`python -m pspnet_lib data toy`)."
    )


def kaggle_reachable(timeout: float = 2.0) -> bool:
    """True when Kaggle accepts a connection within `timeout` s, name lookup included; never waits longer."""
    return host_reachable(KAGGLE_ADDRESS, timeout)


@dataclass(frozen=True)
class DatasetDirs:
    """A dataset's folder holding train/ and val/, and those split folders."""

    root: Path
    train: Path
    val: Path

    def split(self, name: str) -> Path:
        """The folder of split `name` ("train" or "val")."""
        if name not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES}, got {name!r}")
        return self.train if name == "train" else self.val


def has_splits(folder: Path) -> bool:
    """True when `folder` holds both train/ and val/ folders."""
    return all((folder / name).is_dir() for name in SPLIT_NAMES)


def resolve_dataset_dirs(root: str | Path) -> DatasetDirs:
    """The split folders under `root`, accepting `root/train` and up to two `cityscapes_data/` levels between."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"dataset folder {root} does not exist. {how_to_get()}")
    if not root.is_dir():
        raise DataError(f"{root} is a file: expected a dataset folder holding train/ and val/")
    folder = root
    for _ in range(MAX_NESTING + 1):
        if has_splits(folder):
            return DatasetDirs(root=folder, train=folder / "train", val=folder / "val")
        folder = folder / NESTED_NAME
    raise DataError(wrong_layout_message(root))


def visible_entries(folder: Path) -> list[str]:
    """Names in `folder` (folders with a trailing /), hidden ones left out, sorted."""
    return sorted(
        p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if not p.name.startswith(".")
    )


def deeper_dataset_folder(root: Path) -> Path | None:
    """A folder up to three levels below `root` that holds train/ and val/, if there is one."""
    for pattern in ("*", "*/*", "*/*/*"):
        for folder in sorted(root.glob(pattern)):
            if folder.is_dir() and has_splits(folder):
                return folder
    return None


def wrong_layout_message(root: Path) -> str:
    """Explain what `root` holds and what a dataset folder should hold."""
    entries = visible_entries(root)
    if not entries:
        return f"dataset folder {root} is empty: expected train/ and val/ folders of 512x256 pair JPEGs. {how_to_get()}"
    found = ", ".join(entries[:8]) + (f" and {len(entries) - 8} more" if len(entries) > 8 else "")
    expected = f"expected {root}/train/ and {root}/val/ (or the same under {root}/{NESTED_NAME}/)"
    hint = ""
    if root.name in SPLIT_NAMES and any(name.lower().endswith(PAIR_SUFFIXES) for name in entries):
        hint = f" {root} looks like a split folder itself: pass its parent {root.parent}."
    elif (deeper := deeper_dataset_folder(root)) is not None:
        hint = f" train/ and val/ are in {deeper}: pass that folder."
    return f"dataset folder {root} has the wrong layout: found {found}; {expected}.{hint}"


def kagglehub_dataset_dir() -> Path:
    """Where kagglehub caches this dataset (honours $KAGGLEHUB_CACHE)."""
    cache = Path(os.environ.get(KAGGLEHUB_CACHE_ENV) or Path.home() / ".cache" / "kagglehub").expanduser()
    return cache / "datasets" / DATASET_HANDLE


def kagglehub_cached_versions() -> list[Path]:
    """Cached versions of the dataset, newest first."""
    versions = [
        p for p in (kagglehub_dataset_dir() / "versions").glob("*") if p.name.isdigit() and p.is_dir()
    ]
    return sorted(versions, key=lambda p: int(p.name), reverse=True)


def candidate_roots() -> list[Path]:
    """Where the real pairs are looked for, in order (without $CITYSCAPES_PAIRS_DIR)."""
    return [data_root() / NESTED_NAME, *kagglehub_cached_versions(), KAGGLE_INPUT_DIR]


def find_cityscapes_pairs() -> Path | None:
    """The folder holding the real train/ and val/ pairs, or None. A set but broken $CITYSCAPES_PAIRS_DIR raises."""
    if os.environ.get(PAIRS_DIR_ENV):
        try:
            return resolve_dataset_dirs(os.environ[PAIRS_DIR_ENV]).root
        except DataError as error:
            raise DataError(f"${PAIRS_DIR_ENV} does not point at the dataset: {error}") from None
    for candidate in candidate_roots():
        if candidate.is_dir():
            try:
                return resolve_dataset_dirs(candidate).root
            except DataError:
                continue
    return None


def dataset_choice() -> str:
    """$PSPNET_DATASET: "auto" (unset: the real pairs when found), "synthetic" or "real"; anything else raises."""
    choice = os.environ.get(DATASET_CHOICE_ENV, "").strip().lower() or "auto"
    if choice not in DATASET_CHOICES:
        raise DataError(
            f"${DATASET_CHOICE_ENV} must be one of {', '.join(DATASET_CHOICES)} (or unset), "
            f"got {os.environ[DATASET_CHOICE_ENV]!r}"
        )
    return choice


def course_folder() -> Path:
    """The course checkout this library runs from (where pyproject.toml is), else the working folder (pip install)."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()


def shown_path(path: Path) -> str:
    """`path` relative to the working folder when both lie inside the course (no machine paths in notebooks), else
    as is: a command run from outside the checkout never prints a `../../` path."""
    resolved, course = Path(path).resolve(), course_folder().resolve()
    if not (resolved.is_relative_to(course) and Path.cwd().resolve().is_relative_to(course)):
        return str(path)
    return os.path.relpath(resolved)


def default_dataset(
    synthetic_root: str | Path | None = None, num_train: int = 200, num_val: int = 50, seed: int = 0
) -> Path:
    """The real pairs when found, else the synthetic city (generated on first use); prints one line saying which.

    $PSPNET_DATASET=synthetic takes the synthetic city even when the real pairs are here (so stored
    notebook outputs never show them); $PSPNET_DATASET=real raises when they are not found.
    """
    choice = dataset_choice()
    real = None if choice == "synthetic" else find_cityscapes_pairs()
    if real is not None:
        print(f"Using the real Cityscapes pairs at {shown_path(real)}.")
        return real
    if choice == "real":
        raise DataError(f"${DATASET_CHOICE_ENV}=real but the real Cityscapes pairs were not found. {how_to_get()}")
    root = ensure_synthetic_dataset(synthetic_root, num_train, num_val, seed)
    reason = f"${DATASET_CHOICE_ENV}=synthetic" if choice == "synthetic" else "Real Cityscapes pairs not found"
    print(f"{reason}; using the synthetic city at {shown_path(root)} ({num_train} train / {num_val} val).")
    return root


def credentials_rejected(error: BaseException) -> bool:
    """Whether a kagglehub error means "bad or expired credentials" (HTTP 401/403) rather than a network problem."""
    response = getattr(error, "response", None)
    return type(error).__name__ in REJECTED_ERRORS or getattr(response, "status_code", None) in REJECTED_STATUSES


def download_cityscapes_pairs(timeout: float = 1800.0, output_dir: str | Path | None = None) -> Path:
    """Download the Kaggle pairs with kagglehub (with its progress bar); a clear DataError when offline or too slow."""
    import kagglehub  # imported here: it loads IPython, which a GPU server need not have

    if timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    outcome: dict[str, object] = {}

    def download() -> None:
        """Run kagglehub, keeping its result or its exception."""
        try:
            target = str(output_dir) if output_dir is not None else None
            outcome["path"] = kagglehub.dataset_download(DATASET_HANDLE, output_dir=target)
        except BaseException as error:  # noqa: BLE001 - reported to the caller's thread below
            outcome["error"] = error

    worker = threading.Thread(target=download, name="kagglehub-download", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise DataError(
            f"downloading {DATASET_HANDLE} did not finish within {timeout:g} s. {how_to_get(offer_download_command=False)}"
        )
    if "error" in outcome:
        error = outcome["error"]
        reason = (str(error).splitlines() or [""])[0]
        reason = reason if len(reason) <= 120 else reason[:117] + "..."
        if credentials_rejected(error):
            raise CredentialsRejected(
                f"Kaggle rejected the credentials for {DATASET_HANDLE} ({type(error).__name__}: {reason})"
            ) from error
        raise DataError(
            f"could not download {DATASET_HANDLE} ({type(error).__name__}: {reason}); check the network "
            f"connection. {how_to_get(offer_download_command=False)}"
        ) from error
    return resolve_dataset_dirs(outcome["path"]).root
