"""``python -m actors.run CONFIG.toml``: run one process configuration, like ``cmsRun``.

The command line lives in :mod:`actors.framework.cli`; this module is its
entry point.
"""

from __future__ import annotations

import sys

from .framework.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
