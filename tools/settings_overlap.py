"""Settings types and the field names they share: every dataclass with >= 5 fields in pspnet_lib (and bench).

    python tools/settings_overlap.py [--bench]

Prints each such type with its field count, then every pair of types that share field names, and the total
number of shared names counted pairwise (issue 37: a name shared by two types should mean one thing, so fewer
shared names means fewer settings spelled twice). tests/test_settings_overlap.py keeps the total at its ceiling.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import pkgutil
import sys
from pathlib import Path

MIN_FIELDS = 5


def settings_types(packages: tuple[str, ...] = ("pspnet_lib",)) -> dict[str, tuple[str, ...]]:
    """{module.Class: field names} of every dataclass with at least MIN_FIELDS fields defined in `packages`."""
    found: dict[str, tuple[str, ...]] = {}
    for package_name in packages:
        package = importlib.import_module(package_name)
        names = [package_name] + [
            info.name for info in pkgutil.walk_packages(package.__path__, f"{package_name}.")
            if not info.name.endswith("__main__")
        ]
        for name in names:
            try:
                module = importlib.import_module(name)
            except ImportError:  # a display-only module without its extra installed
                continue
            for value in vars(module).values():
                if dataclasses.is_dataclass(value) and isinstance(value, type) and value.__module__ == name:
                    fields = tuple(field.name for field in dataclasses.fields(value))
                    if len(fields) >= MIN_FIELDS:
                        found[f"{name}.{value.__qualname__}"] = fields
    return found


def shared_names(types: dict[str, tuple[str, ...]]) -> dict[tuple[str, str], set[str]]:
    """{(type, type): the field names both have} for every pair sharing at least one."""
    pairs = {}
    for (first, a), (second, b) in itertools.combinations(sorted(types.items()), 2):
        common = set(a) & set(b)
        if common:
            pairs[first, second] = common
    return pairs


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    packages = ("pspnet_lib", "bench") if "--bench" in argv else ("pspnet_lib",)
    types = settings_types(packages)
    for name, fields in sorted(types.items()):
        print(f"{len(fields):3d} fields  {name}")
    pairs = shared_names(types)
    for (first, second), common in sorted(pairs.items(), key=lambda item: -len(item[1])):
        print(f"{len(common):3d} shared  {first} / {second}: {', '.join(sorted(common))}")
    print(f"{len(types)} types with >= {MIN_FIELDS} fields; {sum(map(len, pairs.values()))} field names shared pairwise")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
