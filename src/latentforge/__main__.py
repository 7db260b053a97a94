"""``python -m latentforge``: the command line (so ``torchrun ... -m latentforge fit ...`` works)."""

import sys

from latentforge.cli import main

sys.exit(main())
