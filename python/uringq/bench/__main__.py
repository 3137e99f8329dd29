"""``python -m uringq.bench``: the same as ``python -m uringq bench``."""

import sys

from uringq.bench.cli import main

sys.exit(main())
