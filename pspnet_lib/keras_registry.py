"""Saved .keras files load with plain `keras.saving.load_model` once pspnet_lib is imported, without this import
loading TensorFlow.

A .keras file names this library's classes as "pspnet_lib>ClassName" (layers, `SegmentationModel`, the colour
loss, the paper's SGD); they register with Keras when their modules are imported. Importing pspnet_lib (standard
library only) makes Keras' registry of custom objects import those modules the first time it is asked for a
"pspnet_lib>" name it lacks: patched at once when Keras is already loaded, else right after Keras loads its
registry module (an import hook). The lookup happens while a file loads, when every import has finished.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

PREFIX = "pspnet_lib>"
SERIALIZABLE_MODULES = (
    "pspnet_lib.layers",
    "pspnet_lib.models",
    "pspnet_lib.training.losses",
    "pspnet_lib.training.optimizers",
)
REGISTRY_MODULE = "keras.src.saving.object_registration"  # where Keras keeps GLOBAL_CUSTOM_OBJECTS


def register_serializables() -> None:
    """Import every module whose classes register themselves with Keras."""
    for name in SERIALIZABLE_MODULES:
        importlib.import_module(name)


class _LazyRegistry(dict):
    """Keras' custom-object dict that imports pspnet_lib's serializable modules on the first missing "pspnet_lib>" name."""

    _importing = False

    def _ensure(self, key) -> None:
        if isinstance(key, str) and key.startswith(PREFIX) and not dict.__contains__(self, key):
            if not _LazyRegistry._importing:
                _LazyRegistry._importing = True
                try:
                    register_serializables()
                finally:
                    _LazyRegistry._importing = False

    def __contains__(self, key) -> bool:
        self._ensure(key)
        return dict.__contains__(self, key)

    def __getitem__(self, key):
        self._ensure(key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        self._ensure(key)
        return dict.get(self, key, default)


def _make_lazy(registry_module) -> None:
    """Swap the module's custom-object dict for a lazy one holding the same entries."""
    if not isinstance(registry_module.GLOBAL_CUSTOM_OBJECTS, _LazyRegistry):
        registry_module.GLOBAL_CUSTOM_OBJECTS = _LazyRegistry(registry_module.GLOBAL_CUSTOM_OBJECTS)


class _AfterRegistryImport(importlib.abc.MetaPathFinder):
    """Finds Keras' registry module as usual, and makes its dict lazy right after it executes."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != REGISTRY_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module) -> None:
            execute(module)
            _make_lazy(module)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Make Keras' registry lazy now (Keras loaded) or when Keras loads it; idempotent."""
    if REGISTRY_MODULE in sys.modules:
        _make_lazy(sys.modules[REGISTRY_MODULE])
    elif not any(isinstance(finder, _AfterRegistryImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterRegistryImport())
