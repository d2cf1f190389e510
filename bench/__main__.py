"""Entry point of `python -m bench`."""

import sys

import pspnet_lib  # noqa: F401  (before anything loads TensorFlow: it picks the CPU kernels, see config.prefer_onednn_kernels)
from bench.cli import main

sys.exit(main())
