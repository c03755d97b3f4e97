"""`python -m nbtasklog.cli`: the `nbtasklog` command."""

import sys

from . import main

sys.exit(main())
