"""Baseline: single-thread memory copy (numpy ``copyto``; cupy device copy with --device gpu).

One iteration is one copy of ``size`` bytes between two preallocated buffers
(``one_way``), in this single process.
"""

from __future__ import annotations

from ..pingpong import emit, measure_sync
from ._common import Args, alloc, main, synchronize


def run(args: Args) -> None:
    biggest = max(args.sizes)
    src, dst = alloc(biggest, args.device, 1), alloc(biggest, args.device)
    if args.device == "gpu":
        import cupy

        def copy(size: int) -> None:
            cupy.copyto(dst[:size], src[:size])
            synchronize("gpu")
    else:
        import numpy as np

        def copy(size: int) -> None:
            np.copyto(dst[:size], src[:size])

    series = measure_sync(args.sizes, args.budget, lambda s, n: None, copy, one_way=True)
    emit(series=series)


if __name__ == "__main__":
    main(run)
