"""``python -m latentforge``: the command line (so ``torchrun ... -m latentforge fit ...`` works)."""

from latentforge.cli import entry_point

entry_point()
