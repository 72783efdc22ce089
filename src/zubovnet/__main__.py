"""``python -m zubovnet``: the command line (:mod:`zubovnet.cli`); ``torchrun -m zubovnet``."""
import sys

from .cli import main

sys.exit(main())
