"""pspnet_lib: the helper library of the pspnet-course notebooks.

Importing the package is cheap: TensorFlow is loaded only by the modules that need it
(`pspnet_lib.data`, `pspnet_lib.layers`, `pspnet_lib.models`, `pspnet_lib.training`, ...).
Installing the course never installs TensorFlow (Colab, Kaggle and lab images bring their own),
so importing the package checks that one is there and says how to get one if not.
"""

from importlib.util import find_spec

__version__ = "0.1.0"

if find_spec("tensorflow") is None:
    raise ImportError(
        "pspnet_lib needs TensorFlow, which this Python does not have (installing the course never installs it): "
        "run `make setup`, or install one build: pip install tensorflow-cpu (no GPU), "
        "pip install 'tensorflow[and-cuda]' (Linux GPU) or pip install tensorflow (macOS)"
    )

# TensorFlow's faster CPU kernels, where it would leave them off (before anything imports TensorFlow).
from pspnet_lib import config  # noqa: E402

config.prefer_onednn_kernels()

# Saved .keras files load with plain keras.saving.load_model: the library's classes register with Keras
# when Keras is (or once it gets) imported, never here (see keras_registry).
from pspnet_lib import keras_registry  # noqa: E402

keras_registry.install()
