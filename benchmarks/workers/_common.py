"""Shared worker plumbing: argument parsing, buffers, reporting failures."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..pingpong import Budget, emit


@dataclass(frozen=True)
class Args:
    variant: str
    role: str
    sizes: list[int]
    budget: Budget
    device: str
    extra: dict[str, Any]
    address: str | None


def parse(argv: list[str] | None = None) -> Args:
    argv = sys.argv[1:] if argv is None else argv
    variant, role, config = argv[0], argv[1], json.loads(argv[2])
    return Args(
        variant=variant,
        role=role,
        sizes=list(config.get("sizes", [])),
        budget=Budget.from_json(config["budget"]) if "budget" in config else Budget(0, 1, 1, 1, 1),
        device=config.get("device", "host"),
        extra=config.get("extra", {}),
        address=argv[3] if len(argv) > 3 else None,
    )


def alloc(size: int, device: str, fill: int = 0) -> Any:
    """A C-contiguous uint8 array of ``size`` bytes in host or device memory."""
    if device == "gpu":
        import cupy

        return cupy.full(size, fill, dtype=cupy.uint8)
    import numpy as np

    return np.full(size, fill, dtype=np.uint8)


def synchronize(device: str) -> None:
    """Wait for the GPU (no-op on host) so that timings include the device work."""
    if device == "gpu":
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def main(run: Callable[[Args], None]) -> None:
    """Run a worker; any exception becomes ``{"error": ...}`` and exit status 1."""
    args = parse()
    try:
        run(args)
    except Exception as exc:  # report every failure to the driver, by name
        emit(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=6))
        sys.exit(1)
