"""``python -m zubovnet.experiments EXPERIMENT ...``: ``zubovnet reproduce`` stand-alone."""
import sys

from .cli import main

sys.exit(main())
