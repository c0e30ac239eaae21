"""``--load N``: N busy processes beside the measured job (a farm node with every core busy).

Each busy process is a Python loop that never sleeps, in its own process
group, started before the part's series and killed (SIGKILL, reaped) when the
``with`` block ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator

from .harness import python

__all__ = ["busy"]

_SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def busy(n: int) -> Iterator[list[int]]:
    """Run ``n`` CPU-bound processes for the duration of the block; yields their pids."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [python(), "-c", _SPIN],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait()
