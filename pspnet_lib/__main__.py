"""`python -m pspnet_lib ...` runs the command line."""

from pspnet_lib.cli import main

raise SystemExit(main())
