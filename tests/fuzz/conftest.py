"""Fixtures of the fuzz targets (see tests/fuzz/_support.py for the example counts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors.errors import BackendUnavailable
from tests.fuzz._support import LoopRunner


@pytest.fixture(scope="module")
def runner() -> Iterator[LoopRunner]:
    """One event loop shared by every example of a module."""
    loop_runner = LoopRunner()
    yield loop_runner
    loop_runner.close()


@pytest.fixture
async def ucx_ready() -> None:
    """Skip unless ucxx imports and a UCX context + worker can be made here."""
    try:
        from actors.transports.ucx import _progress

        eng = _progress.engine()
    except (BackendUnavailable, ImportError) as exc:
        pytest.skip(f"ucx:// unavailable: {exc}")
    eng.acquire()
    eng.release()
