"""Saved .keras files load with plain `keras.saving.load_model` once pspnet_lib is imported, and importing
pspnet_lib still does not load TensorFlow.

What is registered, and how: every class the library saves (its layers, `SegmentationModel`, the losses, the
paper's SGD, `metrics.PixelAccuracy`) registers itself with Keras' public decorator
`keras.saving.register_keras_serializable(package="pspnet_lib")` when its module is imported, so a .keras file
names it "pspnet_lib>ClassName". `register_serializables()` imports those modules (`SERIALIZABLE_MODULES`) and
`custom_objects()` returns their classes by registered name, for `keras.saving.load_model(..., custom_objects=...)`.
Keras' own objects are never replaced or patched.

When: Keras looks a registered name up while a file loads, in the dict `keras.saving.get_custom_objects()`
returns; it never imports a package other than its own to find one. So the modules must be imported before a
file loads, but `import pspnet_lib` cannot import them (they need TensorFlow). Registration therefore follows
Keras itself:

- Keras already imported when pspnet_lib is: register at once (TensorFlow is loaded anyway).
- Otherwise `install()` puts a finder on `sys.meta_path` (Python's public import hook, `importlib.abc`) that
  runs `register_serializables()` right after the `keras` package finishes importing. When that import of
  Keras happens inside one of pspnet_lib's own modules (`pspnet_lib.layers` begins with `import keras`),
  registering there would re-enter a half-imported module; the finder also watches pspnet_lib's modules, counts
  how deeply their imports nest, and registers when the outermost one has finished.

A process that never imports Keras pays nothing; one that does imports the modules above once (a fraction of a
second after TensorFlow itself).
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

PACKAGE = "pspnet_lib"
PREFIX = f"{PACKAGE}>"  # how a .keras file names a registered class: "pspnet_lib>ClassName"
SERIALIZABLE_MODULES = (
    "pspnet_lib.layers",
    "pspnet_lib.models",
    "pspnet_lib.metrics",
    "pspnet_lib.training.losses",
    "pspnet_lib.training.optimizers",
)


def register_serializables() -> None:
    """Import every module whose classes register themselves with Keras (idempotent)."""
    for name in SERIALIZABLE_MODULES:
        importlib.import_module(name)


def custom_objects() -> dict[str, type]:
    """The library's saveable classes by registered name ("pspnet_lib>ClassName"), registering them first."""
    register_serializables()
    import keras  # loaded by the modules above

    return {name: obj for name, obj in keras.saving.get_custom_objects().items() if name.startswith(PREFIX)}


class _RegisterAfterKeras(importlib.abc.MetaPathFinder):
    """Finds `keras` and pspnet_lib's submodules as usual, and registers once Keras and the outermost pspnet_lib
    import have both finished executing."""

    def __init__(self) -> None:
        self.depth = 0  # pspnet_lib modules being executed, nested
        self.done = False

    def find_spec(self, fullname, path=None, target=None):
        """The spec the other finders give, its loader wrapped; None for modules this finder does not watch."""
        if fullname != "keras" and not fullname.startswith(f"{PACKAGE}."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            self._wrap(spec.loader, nested=fullname != "keras")
        return spec

    def _wrap(self, loader, nested: bool) -> None:
        """Make `loader.exec_module` register after it runs (counting the nesting of pspnet_lib's modules)."""
        execute = loader.exec_module

        def exec_module(module) -> None:
            self.depth += nested
            try:
                execute(module)
            finally:
                self.depth -= nested
            self.register_when_ready()

        loader.exec_module = exec_module

    def register_when_ready(self) -> None:
        """Register once Keras is loaded and no pspnet_lib module is half executed; then step aside."""
        if self.done or self.depth or "keras" not in sys.modules:
            return
        self.done = True
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        register_serializables()


def install() -> None:
    """Register now when Keras is loaded, else when it loads (idempotent)."""
    if "keras" in sys.modules:
        register_serializables()
    elif not any(isinstance(finder, _RegisterAfterKeras) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterKeras())
