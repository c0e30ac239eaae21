"""Run a Python snippet in a fresh interpreter (what it imports is not this process's)."""

from __future__ import annotations

import subprocess
import sys


def last_line(code: str, timeout: float = 60) -> str:
    """The last line ``code`` prints in a new interpreter; CalledProcessError if it fails."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout.strip().splitlines()[-1]
