"""The transports every in-process conformance test runs over.

One entry per scheme whose two ends can live in one test process. ``mpi://``
needs ranks started by mpiexec and runs the same checks through its own
launcher (tests/transports/test_mpi.py). An entry whose backend cannot be
imported makes its tests skip with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from actors.errors import BackendUnavailable
from actors.transports import get_backend


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


#: scheme -> function returning a fresh listen URL
LISTEN_URLS: dict[str, Callable[[], str]] = {
    "inproc": lambda: f"inproc://{_unique('test-')}",
    "tcp": lambda: "tcp://127.0.0.1:0",
    "shm": lambda: f"shm://{_unique('test-')}",
    "ucx": lambda: "ucx://127.0.0.1:0",
}

#: scheme -> pytest marks
MARKS: dict[str, list[pytest.MarkDecorator]] = {
    "ucx": [pytest.mark.ucx],
}

#: schemes whose peer can be another OS process (for the kill tests)
CROSS_PROCESS = ("tcp", "shm", "ucx")


def params(schemes: tuple[str, ...] | None = None) -> list[object]:
    """pytest params over ``schemes`` (default: all in-process ones) with marks."""
    return [
        pytest.param(s, id=s, marks=MARKS.get(s, []))
        for s in (schemes if schemes is not None else tuple(LISTEN_URLS))
    ]


def require(scheme: str) -> None:
    """Skip the calling test when the backend for ``scheme`` cannot load here."""
    try:
        get_backend(scheme)
    except (BackendUnavailable, ImportError) as exc:
        pytest.skip(f"{scheme}:// backend unavailable: {exc}")
