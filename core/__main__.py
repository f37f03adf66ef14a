"""``python -m vmapsim``."""

import sys

from vmapsim.tools.cli import main

sys.exit(main())
