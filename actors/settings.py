"""Every environment knob of hep-actors, in one table.

Each knob is a :class:`Setting`: one ``ACTORS_`` prefix, the unit in the name,
a default, and a one-line meaning. A setting is read when it is used
(``SETTING.get()``: at link or process start, never at import time), so a
test or a notebook may change the environment between two links. A value that
does not parse raises :class:`~actors.errors.ConfigError` naming the variable.

``docs/settings.md`` shows the same table; ``python -m actors.settings`` prints
it with the values in force.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from ._parse import (
    non_negative,
    non_negative_int,
    one_of,
    optional_bool,
    parse_bool,
    parse_cpu_list,
    positive,
    positive_int,
)
from .errors import ConfigError

__all__ = [
    "ALLOW_PICKLE",
    "ASK_SPIN_US",
    "CPUS",
    "HOST_PROCESSES",
    "LINKS",
    "LOG_LEVEL",
    "LOOP_SPIN_US",
    "LOOP_SPIN_WITH_CPUS_US",
    "MPI_CUDA_AWARE",
    "MPI_HEARTBEAT_S",
    "MPI_HEARTBEAT_TIMEOUT_S",
    "MPI_MAX_SLEEP_S",
    "MPI_MIN_SPINS",
    "MPI_POOL_BYTES",
    "MPI_SHORT_NAPS_S",
    "MPI_SIDE_HOST",
    "MPI_SPIN_S",
    "PROGRESS_LINES",
    "RENDEZVOUS",
    "REPORT_FILE",
    "SETTINGS",
    "SHM_MAX_MAPPED_BYTES",
    "SHM_MAX_SEGMENTS",
    "STREAM_SPIN_US",
    "UCX_SPIN_US",
    "Setting",
    "host_processes",
    "in_force",
    "loops_stay_awake",
    "mpi_spin_s",
    "parse_bool",
    "parse_cpu_list",
    "ucx_spin_us",
    "usable_cpus",
]

T = TypeVar("T")


_LOG_LEVELS = ("debug", "info", "warning", "error")


class Setting(NamedTuple, Generic[T]):
    """One environment variable: name, default, parser, unit and meaning.

    A named tuple (immutable; cheaper to define than a frozen dataclass, and this module
    is imported by every process that opens a link)."""

    name: str
    default: T
    parse: Callable[[str], T]
    unit: str
    meaning: str

    def get(self) -> T:
        """The value in force now (the default when the variable is unset).

        Raises ConfigError naming the variable when its value does not parse.
        """
        raw = os.environ.get(self.name)
        if raw is None:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"environment variable {self.name}={raw!r}: {exc}") from exc


STREAM_SPIN_US: Setting[float] = Setting(
    "ACTORS_STREAM_SPIN_US",
    100.0,
    non_negative,
    "µs",
    "longest poll of a tcp:// or shm:// receive right after traffic before it sleeps in the "
    "kernel (0 disables polling; no polls in a process with threads = 0)",
)
#: ``ACTORS_LOOP_SPIN_US`` where a host has a CPU per process of the job: what the launcher
#: sets there, and what ``auto`` stands for there
LOOP_SPIN_WITH_CPUS_US = 5000.0
#: variables in which MPI launchers tell a process how many processes of its job share its
#: host (MPICH and Intel MPI's Hydra, Open MPI's mpirun)
_MPI_HOST_PROCESSES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")


def loops_stay_awake(processes: int, cpus: int) -> bool:
    """Whether the event loops of ``processes`` processes on a host whose job may use
    ``cpus`` CPUs stay awake after link traffic: at most one process per CPU."""
    return processes <= cpus


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity; ``os.cpu_count()`` where the platform
    cannot say). A process that ``mpiexec`` or ``ACTORS_CPUS`` bound to one CPU counts one."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def host_processes() -> int | None:
    """How many processes of this job run on this host: ``ACTORS_HOST_PROCESSES`` when
    set (non-zero), else the count the MPI launcher put in the environment, else None
    (not known). Raises ConfigError naming a variable that does not parse."""
    told = HOST_PROCESSES.get()
    if told:
        return told
    for name in _MPI_HOST_PROCESSES:  # read like a setting: a bad value names the variable
        count = Setting(name, 0, positive_int, "processes", "").get()
        if count:
            return count
    return None


def _cpu_per_process() -> bool | None:
    """Whether this host has a CPU per process of the job (:func:`host_processes`
    against :func:`usable_cpus`); None when the number of processes is not known."""
    count = host_processes()
    return None if count is None else loops_stay_awake(count, usable_cpus())


def _loop_spin(text: str) -> float:
    """A spin in µs, or ``auto``: :data:`LOOP_SPIN_WITH_CPUS_US` where this host has a CPU
    per process of the job, else 0 (also when the number of processes is not known)."""
    if text.strip().lower() != "auto":
        return non_negative(text)
    return LOOP_SPIN_WITH_CPUS_US if _cpu_per_process() else 0.0


LOOP_SPIN_US: Setting[float] = Setting(
    "ACTORS_LOOP_SPIN_US",
    0.0,
    _loop_spin,
    "µs",
    "how long an event loop keeps polling, without sleeping, after a link sent or received "
    "(0: sleep at once); pays for streams of messages between processes with CPUs of their "
    "own: python -m actors.launch sets 5000 where its host has a CPU per process, and auto "
    "(5000 when ACTORS_HOST_PROCESSES or the MPI launcher's count of this host's processes "
    "is at most this process's CPUs, else 0) where mpiexec places the processes",
)
ASK_SPIN_US: Setting[float] = Setting(
    "ACTORS_ASK_SPIN_US",
    200.0,
    non_negative,
    "µs",
    "how long the event loop of a process keeps polling, without sleeping, after it sent or "
    "answered a remote actor's ask (0: sleep at once)",
)
SHM_MAX_SEGMENTS: Setting[int] = Setting(
    "ACTORS_SHM_MAX_SEGMENTS",
    4096,
    positive_int,
    "segments",
    "most shared-memory segments one shm:// link keeps mapped for its peer (each holds a "
    "descriptor): a peer that announces more is refused, that link closed with ProtocolError",
)
SHM_MAX_MAPPED_BYTES: Setting[int] = Setting(
    "ACTORS_SHM_MAX_MAPPED_BYTES",
    64 << 30,
    positive_int,
    "bytes",
    "most bytes of those segments one shm:// link keeps mapped (at least 4x the link's "
    "max_message_size): beyond it likewise",
)
UCX_SPIN_US: Setting[float] = Setting(
    "ACTORS_UCX_SPIN_US",
    100.0,
    non_negative,
    "µs",
    "how long the ucx:// progress task keeps polling after the last activity (longer holds "
    "the GIL that a process's worker threads need; unset: 0 where the host runs more of the "
    "job's processes than its CPUs)",
)
MPI_SPIN_S: Setting[float] = Setting(
    "ACTORS_MPI_SPIN_S",
    0.0005,
    non_negative,
    "s",
    "longest an mpi:// header wait polls before it naps (adaptive: 0 while replies come "
    "later; unset: 0 where the host runs more of the job's processes than its CPUs)",
)


def mpi_spin_s() -> float:
    """The longest spin of an ``mpi://`` header wait: ``ACTORS_MPI_SPIN_S`` when set;
    otherwise 0 where this host runs more of the job's processes than this process has
    CPUs (:func:`host_processes`: the loops sleep there, a polling wait would take the
    CPU that another process of the job needs, and a napping peer gets small messages
    over the side channel), else its default. Raises ConfigError as :meth:`Setting.get`."""
    return _spin_unless_crowded(MPI_SPIN_S)


def ucx_spin_us() -> float:
    """How long the ``ucx://`` progress engine polls after the last activity, in µs:
    ``ACTORS_UCX_SPIN_US`` when set; otherwise 0 where this host runs more of the job's
    processes than this process has CPUs (:func:`host_processes`: the loops sleep there,
    and a polling engine would take the CPU that another process of the job needs), else
    its default. Raises ConfigError as :meth:`Setting.get`."""
    return _spin_unless_crowded(UCX_SPIN_US)


def _spin_unless_crowded(setting: Setting[float]) -> float:
    """``setting`` when the user set it; else 0 where this host runs more of the job's
    processes than this process has CPUs, else the setting's default."""
    if setting.name not in os.environ and _cpu_per_process() is False:
        return 0.0
    return setting.get()


MPI_MAX_SLEEP_S: Setting[float] = Setting(
    "ACTORS_MPI_MAX_SLEEP_S", 0.01, positive, "s", "longest nap of an mpi:// wait between polls"
)
MPI_MIN_SPINS: Setting[int] = Setting(
    "ACTORS_MPI_MIN_SPINS",
    0,
    non_negative_int,
    "polls",
    "polls an mpi:// wait makes before it may nap",
)
MPI_SHORT_NAPS_S: Setting[float] = Setting(
    "ACTORS_MPI_SHORT_NAPS_S",
    0.02,
    non_negative,
    "s",
    "how long an mpi:// wait keeps its naps short before they grow to the longest",
)
MPI_POOL_BYTES: Setting[int] = Setting(
    "ACTORS_MPI_POOL_BYTES",
    512 << 20,
    non_negative_int,
    "bytes",
    "most idle receive memory the mpi:// buffer pool keeps for reuse",
)
MPI_HEARTBEAT_S: Setting[float] = Setting(
    "ACTORS_MPI_HEARTBEAT_S",
    1.0,
    positive,
    "s",
    "interval of the heartbeat on an mpi:// link's TCP side channel",
)
MPI_HEARTBEAT_TIMEOUT_S: Setting[float] = Setting(
    "ACTORS_MPI_HEARTBEAT_TIMEOUT_S",
    30.0,
    positive,
    "s",
    "silence on the side channel after which the mpi:// peer counts as lost",
)
MPI_SIDE_HOST: Setting[str] = Setting(
    "ACTORS_MPI_SIDE_HOST",
    "",
    str,
    "host",
    "address the mpi:// side channel binds and advertises (default: binds every interface, "
    "advertises the host's non-loopback addresses; the channel is authenticated)",
)
MPI_CUDA_AWARE: Setting[bool | None] = Setting(
    "ACTORS_MPI_CUDA_AWARE",
    None,
    optional_bool,
    "bool",
    "force (1) or forbid (0) passing device buffers to MPI directly (default: detected)",
)
ALLOW_PICKLE: Setting[bool] = Setting(
    "ACTORS_ALLOW_PICKLE",
    False,
    parse_bool,
    "bool",
    "this process accepts pickled objects from the wire (lets a peer run code here: opt in "
    "only between trusted processes)",
)
PROGRESS_LINES: Setting[bool] = Setting(
    "ACTORS_PROGRESS_LINES",
    False,
    parse_bool,
    "bool",
    "python -m actors.run prints machine-readable progress lines (set by the launcher)",
)
LINKS: Setting[str] = Setting(
    "ACTORS_LINKS",
    "{}",
    str,
    "JSON",
    "the link table of a launched process (set by the launcher; a file name or JSON)",
)
LOG_LEVEL: Setting[str] = Setting(
    "ACTORS_LOG_LEVEL",
    "warning",
    lambda text: one_of(text, _LOG_LEVELS),
    "level",
    "level of the library's log messages on stderr in the command lines: "
    "debug, info, warning or error (--log-level and -v win; the launcher sets it for its "
    "processes)",
)
REPORT_FILE: Setting[str] = Setting(
    "ACTORS_REPORT_FILE",
    "",
    str,
    "path",
    "where a launched process also writes its final report line (set by the launcher: "
    "mpiexec may split a long output line)",
)
RENDEZVOUS: Setting[str] = Setting(
    "ACTORS_RENDEZVOUS",
    "",
    str,
    "path",
    "rendezvous directory of a launched process's links (set by the launcher)",
)

HOST_PROCESSES: Setting[int] = Setting(
    "ACTORS_HOST_PROCESSES",
    0,
    non_negative_int,
    "processes",
    "how many processes of the job run on this host, for ACTORS_LOOP_SPIN_US=auto (0: not "
    "told; then MPI_LOCALNRANKS or OMPI_COMM_WORLD_LOCAL_SIZE of the MPI launcher count)",
)
CPUS: Setting[frozenset[int]] = Setting(
    "ACTORS_CPUS",
    frozenset(),
    parse_cpu_list,
    "CPU list",
    "CPUs a command line of hep-actors runs on, e.g. 3 or 0-3,8 (empty: no binding); applied "
    "at its start, before any thread (the launcher sets it per process with [run] bind_to)",
)

#: Every setting, in the order of the documentation table.
SETTINGS: tuple[Setting[object], ...] = (  # type: ignore[assignment]
    STREAM_SPIN_US,
    LOOP_SPIN_US,
    ASK_SPIN_US,
    SHM_MAX_SEGMENTS,
    SHM_MAX_MAPPED_BYTES,
    UCX_SPIN_US,
    MPI_SPIN_S,
    MPI_MAX_SLEEP_S,
    MPI_MIN_SPINS,
    MPI_SHORT_NAPS_S,
    MPI_POOL_BYTES,
    MPI_HEARTBEAT_S,
    MPI_HEARTBEAT_TIMEOUT_S,
    MPI_SIDE_HOST,
    MPI_CUDA_AWARE,
    ALLOW_PICKLE,
    PROGRESS_LINES,
    LINKS,
    RENDEZVOUS,
    REPORT_FILE,
    LOG_LEVEL,
    HOST_PROCESSES,
    CPUS,
)


def table() -> str:
    """The settings as a Markdown table (variable, unit, default, meaning)."""
    rows = ["| variable | unit | default | meaning |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        default = "" if s.default in ("", None, frozenset()) else repr(s.default)
        rows.append(f"| `{s.name}` | {s.unit} | {default} | {s.meaning} |")
    return "\n".join(rows)


def in_force() -> list[str]:
    """One line per setting set in the environment: its text and, where that differs,
    the value it stands for (``auto``: what it resolved to, and from what)."""
    lines = []
    for s in SETTINGS:
        raw = os.environ.get(s.name)
        if raw is None:
            continue
        line = f"{s.name}={raw!r} (set)"
        try:
            value = s.get()
        except ConfigError as exc:
            line += f": {exc}"
        else:
            if s is LOOP_SPIN_US and raw.strip().lower() == "auto":
                line += (
                    f" -> {value:g} µs ({host_processes() or 'unknown'} processes on this "
                    f"host, {usable_cpus()} CPUs)"
                )
        lines.append(line)
    return lines


if __name__ == "__main__":
    print(table())
    for set_line in in_force():
        print(set_line)
