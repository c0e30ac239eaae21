"""What the ``transports`` part measures: our transports and their raw baselines.

Each :class:`Candidate` names its worker, how it is launched, what it needs,
and - for our transports - which baseline series its latency and bandwidth
are divided by (see docs/benchmarks.md, "Reading the ratios").
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from typing import Any

from .harness import Launch, mpiexec, python
from .parts import Context

__all__ = ["CANDIDATES", "Candidate", "build_launch", "unavailable"]

#: environment for UCX on a machine without InfiniBand (the user's settings win)
UCX_ENV = {"UCX_TLS": "tcp,sm,self", "UCX_WARN_UNUSED_ENV_VARS": "n"}
#: Open MPI refuses to run as root (containers) without these; MPICH ignores them
OPENMPI_AS_ROOT = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}


@dataclass(frozen=True)
class Candidate:
    """One measured series.

    ``launch``: ``local`` (one process), ``pair`` (server + client processes),
    ``mpi2`` (one ``mpiexec -n 2`` job), ``mpi-pair`` (server and client each
    under ``mpiexec -n 1``). ``group``: the ``--transports`` key it belongs to
    (``memcpy`` and ``inproc`` always run). ``lat_base`` / ``bw_base``: baseline series names
    (bandwidth: the best of them at each size). ``PORTFILE`` in a string of
    ``extra`` becomes a file in the launch's scratch folder.
    """

    name: str
    role: str  # "transport" | "baseline"
    group: str
    module: str
    variant: str
    launch: str
    needs: tuple[str, ...] = ()
    scheme: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sizes: tuple[int, ...] | None = None
    gpu_capable: bool = True
    lat_base: str | None = None
    bw_base: tuple[str, ...] = ()


_SOCKETS = ("socket blocking", "asyncio streams", "asyncio streams uvloop")
_W = "benchmarks.workers."

CANDIDATES: list[Candidate] = [
    Candidate("memcpy", "baseline", "memcpy", _W + "raw_memcpy", "copy", "local"),
    Candidate(
        "socket blocking",
        "baseline",
        "socket",
        _W + "raw_sockets",
        "blocking",
        "pair",
        gpu_capable=False,
    ),
    Candidate(
        "asyncio streams",
        "baseline",
        "socket",
        _W + "raw_sockets",
        "asyncio",
        "pair",
        gpu_capable=False,
    ),
    Candidate(
        "asyncio streams uvloop",
        "baseline",
        "socket",
        _W + "raw_sockets",
        "asyncio-uvloop",
        "pair",
        needs=("uvloop",),
        gpu_capable=False,
    ),
    Candidate(
        "socketpair wake-up",
        "baseline",
        "socket",
        _W + "raw_sockets",
        "socketpair",
        "local",
        needs=("uvloop",),
        sizes=(8,),
        gpu_capable=False,
    ),
    Candidate(
        "mpi4py Send/Recv", "baseline", "mpi", _W + "raw_mpi", "blocking", "mpi2", needs=("mpi4py",)
    ),
    Candidate(
        "mpi4py Isend/Irecv asyncio",
        "baseline",
        "mpi",
        _W + "raw_mpi",
        "asyncio",
        "mpi2",
        needs=("mpi4py", "uvloop"),
    ),
    Candidate(
        "mpi4py connect/accept",
        "baseline",
        "mpi",
        _W + "raw_mpi",
        "blocking",
        "mpi-pair",
        needs=("mpi4py",),
        extra={"portfile": "PORTFILE"},
    ),
    Candidate(
        "mpi4py connect/accept asyncio",
        "baseline",
        "mpi",
        _W + "raw_mpi",
        "asyncio",
        "mpi-pair",
        needs=("mpi4py", "uvloop"),
        extra={"portfile": "PORTFILE"},
    ),
    Candidate(
        "ucxx polling", "baseline", "ucx", _W + "raw_ucxx", "polling", "pair", needs=("ucxx",)
    ),
    # one process, both ends on one event loop; buffers pass by reference (no bandwidth)
    Candidate(
        "inproc://",
        "transport",
        "inproc",
        _W + "links",
        "inproc",
        "local",
        scheme="inproc",
        extra={"url": "inproc://bench"},
        gpu_capable=False,
    ),
    Candidate(
        "tcp://",
        "transport",
        "tcp",
        _W + "links",
        "tcp",
        "pair",
        scheme="tcp",
        extra={"url": "tcp://127.0.0.1:0"},
        lat_base="socket blocking",
        bw_base=_SOCKETS,
    ),
    Candidate(
        "shm://",
        "transport",
        "shm",
        _W + "links",
        "shm",
        "pair",
        scheme="shm",
        extra={"url": "shm://bench"},
        lat_base="socketpair wake-up",
        bw_base=("memcpy",),
    ),
    Candidate(
        "mpi:// rank",
        "transport",
        "mpi",
        _W + "links",
        "mpi-rank",
        "mpi2",
        scheme="mpi",
        needs=("mpi4py",),
        lat_base="mpi4py Isend/Irecv asyncio",
        bw_base=("mpi4py Send/Recv",),
    ),
    Candidate(
        "mpi:// port-file",
        "transport",
        "mpi",
        _W + "links",
        "mpi-portfile",
        "mpi-pair",
        scheme="mpi",
        needs=("mpi4py",),
        extra={"url": "mpi://port-file/PORTFILE"},
        lat_base="mpi4py connect/accept asyncio",
        bw_base=("mpi4py connect/accept",),
    ),
    Candidate(
        "ucx://",
        "transport",
        "ucx",
        _W + "links",
        "ucx",
        "pair",
        scheme="ucx",
        needs=("ucxx",),
        extra={"url": "ucx://127.0.0.1:0", "loop": "asyncio"},
        lat_base="ucxx polling",
        bw_base=("ucxx polling",),
    ),
]


def selected(ctx: Context) -> list[Candidate]:
    """Candidates for ``--transports``: the chosen transports and their baselines."""
    groups = {"memcpy", "inproc"} | set(ctx.transports)
    if groups & {"tcp", "shm"}:
        groups.add("socket")
    return [c for c in CANDIDATES if c.group in groups]


def unavailable(c: Candidate, ctx: Context) -> str | None:
    """Why ``c`` cannot run here (None when it can)."""
    for module in c.needs + (("cupy",) if ctx.device == "gpu" and c.gpu_capable else ()):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if c.launch.startswith("mpi") and mpiexec() is None:
        return "no mpiexec found (pip install 'hep-actors[mpi]')"
    if c.scheme is not None:
        from actors.errors import BackendUnavailable, ConfigError
        from actors.transports import get_backend

        try:
            get_backend(c.scheme)
        except (BackendUnavailable, ConfigError, ImportError) as exc:
            return f"{c.scheme}:// backend not available: {exc}"
    return None


def device_of(c: Candidate, ctx: Context) -> str:
    """The memory this candidate measures (host-only baselines stay on host)."""
    return "gpu" if ctx.device == "gpu" and c.gpu_capable else "host"


def build_launch(c: Candidate, ctx: Context, workdir: str) -> Launch:
    """The processes for one series (``workdir``: scratch space, e.g. port files).

    ``mpi2`` jobs insert ``$BENCH_MPIEXEC_ARGS`` (e.g. ``-f hosts -ppn 1``) before
    ``-n 2``, so that the two ranks can be placed on two nodes.
    """
    port = os.path.join(workdir, "port")
    extra = {
        k: v.replace("PORTFILE", port) if isinstance(v, str) else v for k, v in c.extra.items()
    }
    if c.scheme == "shm":
        extra["url"] = f"shm://bench-{os.getpid()}-{os.path.basename(workdir)}"
    sizes = [s for s in ctx.sizes if c.sizes is None or s in c.sizes] or ctx.sizes[:1]
    config = json.dumps(
        {
            "sizes": sizes,
            "budget": ctx.budget.to_json(),
            "device": device_of(c, ctx),
            "extra": extra,
        }
    )
    env = {k: os.environ.get(k, v) for k, v in UCX_ENV.items()} if c.group == "ucx" else {}
    if c.launch.startswith("mpi") and os.geteuid() == 0:
        env.update(OPENMPI_AS_ROOT)  # ignored by MPICH

    def argv(role: str) -> list[str]:
        return [python(), "-m", c.module, c.variant, role, config]

    mpi = mpiexec() or "mpiexec"
    if c.launch == "local":
        return Launch(argv("client"), env=env, timeout=ctx.timeout)
    if c.launch == "pair":
        return Launch(argv("client"), argv("server"), env=env, timeout=ctx.timeout)
    if c.launch == "mpi2":
        spread = shlex.split(os.environ.get("BENCH_MPIEXEC_ARGS", ""))  # e.g. "-f hosts -ppn 1"
        return Launch([mpi, *spread, "-n", "2", *argv("rank")], env=env, timeout=ctx.timeout)
    return Launch(
        [mpi, "-n", "1", *argv("client")],
        [mpi, "-n", "1", *argv("server")],
        env=env,
        timeout=ctx.timeout,
    )


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A private scratch folder for one launch (MPI port files)."""
    return tempfile.TemporaryDirectory(prefix="hep-bench-")
