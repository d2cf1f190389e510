"""The run folder: what `train` writes there, which folders it refuses, and when a run resumes.

A run folder holds config.json (written first), history.csv, best.keras, model.keras, backup/ (Keras'
BackupAndRestore: an interrupted run resumes from it) and logs/. A resumed run must keep every setting of its
config.json but those the recipe marks resumable (epochs, time budget). With several workers only the chief
writes the run folder; every other one writes into its own `workertemp_<index>` folder inside it.
"""

from __future__ import annotations

import json
from pathlib import Path

from pspnet_lib.run_files import check_writable_folder
from pspnet_lib.training.config import CONFIG_FILE, TrainConfig
from pspnet_lib.training.recipes import resumable_fields

BACKUP_METADATA = "training_metadata.json"  # keras.callbacks.BackupAndRestore's files in backup/
BACKUP_WEIGHTS = "latest.weights.h5"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def is_resuming(config: TrainConfig) -> bool:
    """True when the run folder holds the backup of an interrupted run (BackupAndRestore restores it)."""
    return (config.run_dir / "backup").exists()



def is_chief(strategy) -> bool:
    """True for the worker that writes the run folder (the only one, unless TF_CONFIG names several)."""
    return bool(strategy.extended.should_checkpoint)


def worker_dir(config: TrainConfig, strategy) -> Path:
    """Where this worker writes: the run folder for the chief, else its own `workertemp_<index>` inside it."""
    if is_chief(strategy):
        return config.run_dir
    return config.run_dir / f"workertemp_{strategy.cluster_resolver.task_id}"



def is_run_folder(run_dir: Path) -> bool:
    """True when `run_dir` was written by `train`: it holds a run's config.json (written before anything else)."""
    try:
        saved = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and {"out", "recipe"} <= saved.keys()


def check_backup(run_dir: Path) -> None:
    """ValueError when backup/ says epochs were trained but holds no readable weights to resume them from.

    Keras' BackupAndRestore would otherwise go on from the saved epoch with untrained weights (when the weights
    file was deleted) or fail with h5py's message and no file named (when both copies are damaged).
    """
    backup = run_dir / "backup"
    try:
        epochs = json.loads((backup / BACKUP_METADATA).read_text())["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        epochs = 0
    copies = [backup / BACKUP_WEIGHTS, backup / f"{BACKUP_WEIGHTS}.bkp"]
    present = [path for path in copies if path.is_file()]
    start_over = f"delete {backup} to start over, or choose another --out"
    if epochs and not present:
        raise ValueError(
            f"{run_dir} holds an interrupted run of {epochs} epoch(s) whose weights are gone ({copies[0]} is missing): "
            f"resuming would go on from untrained weights; {start_over}"
        )
    if present and not any(_is_hdf5(path) for path in present):
        raise ValueError(
            f"{run_dir}: the backup weights of the interrupted run are damaged "
            f"({' and '.join(str(path) for path in present)} are not HDF5 files); {start_over}"
        )


def _is_hdf5(path: Path) -> bool:
    """True when `path` starts with the HDF5 signature (a .weights.h5 file that h5py can open)."""
    with path.open("rb") as file:
        return file.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE


def check_run_dir(config: TrainConfig) -> None:
    """Refuse a run folder that is not a new or empty folder or one of `train`'s, holds a finished run, or holds
    an interrupted one with other settings (but for the recipe's resumable ones) or without its backup weights.

    A folder with config.json but no backup/ (a run stopped before its first epoch ended) has nothing to
    resume: it is reused with the new settings.
    """
    run_dir = config.run_dir
    if not is_run_folder(run_dir):
        check_writable_folder(config.out, "--out", (), "a training run")
    if (run_dir / "model.keras").is_file() and not is_resuming(config):
        raise ValueError(f"{config.out} already holds a finished run (model.keras); choose another --out folder")
    saved_path = run_dir / CONFIG_FILE
    if not (saved_path.is_file() and is_resuming(config)):
        return
    check_backup(run_dir)
    saved = json.loads(saved_path.read_text())["recipe"]
    if not isinstance(saved, dict):  # config.json of pspnet_lib before recipes were saved whole: no settings to compare
        raise ValueError(
            f"{config.out} holds an interrupted run saved by an older pspnet_lib (its config.json names the recipe "
            f"{saved!r} without its settings), which this version cannot resume: choose another --out"
        )
    current = json.loads(json.dumps(config.recipe.as_dict()))
    kept = [name for name in current if name not in ("about", *resumable_fields())]
    changed = [name for name in kept if saved.get(name) != current[name]]
    if changed:
        raise ValueError(
            f"{config.out} holds an interrupted run with different {', '.join(changed)} "
            f"({', '.join(f'{name}={saved.get(name)!r}' for name in changed)}): resume with the same settings "
            "(its config.json) or choose another --out"
        )

