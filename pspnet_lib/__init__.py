"""pspnet_lib: the helper library of the pspnet-course notebooks.

Importing the package is cheap: TensorFlow is loaded only by the modules that need it
(`pspnet_lib.data`, `pspnet_lib.layers`, `pspnet_lib.models`, `pspnet_lib.training`, ...).
"""

__version__ = "0.1.0"
