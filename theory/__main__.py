"""``python -m theory``: see :mod:`theory.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
