"""`python -m pspnet_lib data ...`: write the synthetic city, check a dataset, download or find the real pairs."""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pspnet_lib.data import (
    DataError,
    check_dataset,
    default_synthetic_root,
    download_cityscapes_pairs,
    find_cityscapes_pairs,
    write_synthetic_dataset,
)
from pspnet_lib.data.locate import candidate_roots, how_to_get
from pspnet_lib.data.synthetic import MARKER_NAME, OWNER_MARKER
from pspnet_lib.run_files import check_writable_folder

KAGGLE_MARKER = ".pspnet-download"  # written into a --out folder that `data kaggle` claims

Handler = Callable[[argparse.Namespace], int]


def reports_errors(handler: Handler) -> Handler:
    """Turn bad input (DataError, ValueError, OSError) into one `error:` message on stderr and exit status 1."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (DataError, ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

    return run


@reports_errors
def run_toy(args: argparse.Namespace) -> int:
    """Write the synthetic city."""
    share = args.pedestrian_share
    out = args.out if args.out is not None else default_synthetic_root(share)
    check_writable_folder(out, "--out", (OWNER_MARKER, MARKER_NAME), "a synthetic dataset")
    start = time.perf_counter()
    write_synthetic_dataset(out, num_train=args.train, num_val=args.val, seed=args.seed, pedestrian_share=share)
    print(
        f"Wrote {args.train} train + {args.val} val synthetic pairs to {out} in {time.perf_counter() - start:.1f} s."
    )
    return 0


@reports_errors
def run_check(args: argparse.Namespace) -> int:
    """Print the dataset report; exit 0 only when the dataset is usable."""
    if args.sample < 1:
        raise ValueError(f"--sample must be a number of files >= 1, got {args.sample}")
    report = check_dataset(args.root, label_sample=args.sample)
    print(report)
    return 0 if report.ok else 1


@reports_errors
def run_kaggle(args: argparse.Namespace) -> int:
    """Download the real pairs with kagglehub."""
    if args.out is not None:
        check_writable_folder(args.out, "--out", (KAGGLE_MARKER,), "the downloaded pairs")
    print(f"Downloading the Kaggle Cityscapes pairs (time-out {args.timeout:g} s) ...")
    root = download_cityscapes_pairs(timeout=args.timeout, output_dir=args.out)
    if args.out is not None:  # claimed only once written: a later download may refresh it
        (Path(args.out) / KAGGLE_MARKER).touch()
    print(f"The Cityscapes pairs are in {root}.")
    return 0


@reports_errors
def run_find(args: argparse.Namespace) -> int:
    """Print where the real pairs are; exit 1 when they are nowhere."""
    root = find_cityscapes_pairs()
    if root is None:
        searched = ", ".join(str(path) for path in candidate_roots())
        print(f"Real Cityscapes pairs not found (searched $CITYSCAPES_PAIRS_DIR, {searched}). {how_to_get()}")
        return 1
    print(root)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `data toy|check|kaggle|find` to the command line."""
    parser = subparsers.add_parser("data", help="make, check, download or find datasets")
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION", required=True)

    toy = actions.add_parser("toy", help="write the synthetic city (512x256 JPEG pairs)")
    toy.add_argument(
        "--out", help="dataset folder: new, empty or written by `data toy` before (default: data/toy_cityscapes)"
    )
    toy.add_argument("--train", type=int, default=200, help="number of train pairs (default 200)")
    toy.add_argument("--val", type=int, default=50, help="number of val pairs (default 50)")
    toy.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    toy.add_argument(
        "--pedestrian-share",
        type=float,
        default=0.0,
        help="share of streets in the old-town pedestrian zone, 0-1 (default 0; notebook 08 uses 0.5)",
    )
    toy.set_defaults(func=run_toy)

    check = actions.add_parser("check", help="validate a dataset folder; exit 0 only when usable")
    check.add_argument("root", type=Path, help="dataset folder holding train/ and val/")
    check.add_argument(
        "--sample", type=int, default=32, help="files per split whose labels are decoded (default 32)"
    )
    check.set_defaults(func=run_check)

    kaggle = actions.add_parser("kaggle", help="download the real pairs from Kaggle with kagglehub")
    kaggle.add_argument("--out", help="download folder (default: the kagglehub cache)")
    kaggle.add_argument(
        "--timeout", type=float, default=1800.0, help="give up after this many seconds (default 1800)"
    )
    kaggle.set_defaults(func=run_kaggle)

    find = actions.add_parser("find", help="print where the real pairs are")
    find.set_defaults(func=run_find)
