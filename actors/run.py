"""``python -m actors.run CONFIG.toml``: run one process configuration, like ``cmsRun``.

The command line lives in :mod:`actors.framework.cli`; this module is its
entry point. ``SIGUSR1`` prints a stall report (:mod:`actors.framework.stall`)
from the start, so that the launcher's ``--stall-report`` never kills a
process that is still starting.
"""

from __future__ import annotations

import sys

from .framework import stall
from .framework.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    stall.install()
    sys.exit(main())
