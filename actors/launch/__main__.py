"""``python -m actors.launch TOPOLOGY.toml``."""

import sys

from .cli import main

sys.exit(main())
