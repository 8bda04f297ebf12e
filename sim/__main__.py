"""`python -m sim`: the same as `stockroute simulate`."""

import sys

from sim.runner import main

sys.exit(main())
