"""``python -m benchmark``: see benchmark.run.cli."""

import sys

from benchmark.run.cli import main

sys.exit(main())
