"""The command line, `python -m pspnet_lib COMMAND ...`.

Each command group lives in its own module with a `register(subparsers)` function that adds its
sub-commands and sets `func` on them; `main` only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pspnet_lib.config import import_tensorflow_quietly

# Module name under pspnet_lib.cli for each command group, in the order `--help` lists them.
COMMAND_MODULES = ("data", "train")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="python -m pspnet_lib",
        description="PSPNet course tools: data, training, evaluation and prediction.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"pspnet_lib.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"pspnet_lib.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the chosen command and return its exit status."""
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
