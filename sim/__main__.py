"""``python -m sim``: generate, build and simulate every PE configuration (see :mod:`sim.flow`)."""

import sys

from sim.flow import main

sys.exit(main())
