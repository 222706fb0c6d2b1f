"""``python -m sims``: command line of the compiled dynamics (see :mod:`sims.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
