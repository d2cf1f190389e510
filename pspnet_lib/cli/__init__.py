"""The command line, `python -m pspnet_lib COMMAND ...`.

Each command group lives in its own module with a `register(subparsers)` function that adds its
sub-commands and sets `func` on them; `main` only wires them together.
"""

from __future__ import annotations

import argparse
import sys

from pspnet_lib.cli import data, train
from pspnet_lib.config import import_tensorflow_quietly

# Each command group's module, in the order `--help` lists them.
COMMAND_MODULES = (data, train)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="python -m pspnet_lib",
        description="PSPNet course tools: data, training, evaluation and prediction.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the chosen command and return its exit status."""
    try:
        parser = build_parser()  # reads PSPNET_FAST for the defaults
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    import_tensorflow_quietly()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
