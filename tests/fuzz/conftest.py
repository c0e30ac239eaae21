"""Fixtures of the fuzz targets (see tests/fuzz/_support.py for the example counts)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz._support import LoopRunner


@pytest.fixture(scope="module")
def runner() -> Iterator[LoopRunner]:
    """One event loop shared by every example of a module."""
    loop_runner = LoopRunner()
    yield loop_runner
    loop_runner.close()
