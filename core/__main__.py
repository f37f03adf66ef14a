"""``python -m vmapsim``."""

import sys

from .cli import main

sys.exit(main())
