"""Describe the machine and the software versions a result was measured with.

Nothing here imports mpi4py or ucxx into the driver process: versions are read
from package metadata, and the MPI library string (``MPI.Get_library_version``)
from a short subprocess, so that MPI is never initialised in the driver.
"""

from __future__ import annotations

import compileall
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["compile_bytecode", "describe_machine", "mpi_library_version", "versions"]

_PACKAGES = {
    "numpy": "numpy",
    "mpi4py": "mpi4py",
    "mpich": "mpich",
    "ucxx": "ucxx-cu12",
    "uvloop": "uvloop",
    "cupy": "cupy-cuda12x",
    "msgpack": "msgpack",
    "awkward": "awkward",
    "matplotlib": "matplotlib",
    "hep-actors": "hep-actors",
}


#: Open MPI refuses root without these (containers); MPICH ignores them
_OPENMPI_AS_ROOT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _gpu() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def compile_bytecode() -> dict[str, Any]:
    """Byte-compile the ``actors`` and ``benchmarks`` packages (``__pycache__``) before measuring.

    pip compiles a package it installs; an editable install (this checkout) is compiled
    on first import, unless ``PYTHONDONTWRITEBYTECODE`` is set, and then every process
    compiles every module it imports again (about 20 ms of a served actor's start-up).
    Compiling here measures this checkout as an installed package, like every peer.
    Returns what was done, for results.json; a package that cannot be written is left
    as it is (``ok`` false).
    """
    import actors

    packages = {"actors": Path(actors.__file__).parent, "benchmarks": Path(__file__).parent}
    done = {name: bool(compileall.compile_dir(path, quiet=1)) for name, path in packages.items()}
    return {"compiled": sorted(done), "ok": all(done.values())}


def describe_machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, GPU (if any), load average at the start."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "hostname": platform.node(),
        "gpu": _gpu(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def mpi_library_version(mpiexec: str | None) -> str | None:
    """``MPI.Get_library_version()`` (first line), from a singleton subprocess."""
    if mpiexec is None:
        return None
    code = "from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0])"
    try:
        out = subprocess.run(
            [mpiexec, "-n", "1", sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
            env=os.environ | _OPENMPI_AS_ROOT,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.replace("\x00", "").strip() or None  # Open MPI ends it with NUL


def versions(mpiexec: str | None) -> dict[str, Any]:
    """Python and the versions of every relevant package (None when absent)."""
    found: dict[str, Any] = {"python": sys.version.split()[0]}
    for key, dist in _PACKAGES.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = None
    found["mpi_library"] = mpi_library_version(mpiexec) if found["mpi4py"] else None
    return found
