"""`python -m audionode` is the same as the `audionode` console script."""

import sys

from audionode.cli import main

sys.exit(main())
