"""``python -m actors.split CONFIG.toml --offload LABEL ...``."""

import sys

from .cli import main

sys.exit(main())
