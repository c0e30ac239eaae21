"""Benchmark workers: each runs in a fresh subprocess and prints one JSON line.

Invocation (done by :mod:`benchmarks.harness`, not by hand)::

    python -m benchmarks.workers.<family> <variant> <role> '<config json>' [address]

``role`` is ``server`` (prints ``{"ready": address}`` then echoes until the
peer goes away), ``client`` (measures, prints ``{"series": [...]}``) or
``rank`` (both roles in one ``mpiexec -n 2`` job, chosen by MPI rank). A
worker that cannot run prints ``{"error": "..."}`` and exits non-zero.
"""
