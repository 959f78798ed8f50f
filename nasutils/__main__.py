"""Entry point for ``python -m nasutils``."""

import sys

from .cli import main

sys.exit(main())
