"""What the launcher does when one of its processes dies.

Three answers (:meth:`LossPolicy.decide`):

- ``fail``: stop every other process and end non-zero - the only answer
  with ``[run] on_process_loss = "fail"`` or ``--strict``, in MPMD mode (one
  ``mpiexec`` for all) and for any process that is not a follower whose every
  controller resends (``on_follower_loss = "resend"`` on its link);
- ``restart``: start the process again (``restarts = N`` in its
  ``[process.NAME]`` table, N times at most); its controllers connect to the
  replacement (see :mod:`actors.distributed.controller`);
- ``absorb``: let the others go on; its controllers resend its events to a
  survivor, or fail (and the job with them) when none is left.

:func:`check_failover` refuses, before anything starts, what cannot work:
``resend`` or ``restarts`` in MPMD mode, ``restarts`` on a process that is
not a follower or runs embedded. Configurations are inspected (their module
classes imported), never run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..tomlfile import TomlDocument
from ._configs import config_roles
from .topology import Topology

if TYPE_CHECKING:
    from .plan import LaunchPlan, ProcessLaunch

__all__ = ["ABSORB", "FAIL", "RESTART", "LossPolicy", "check_failover"]

ABSORB, RESTART, FAIL = "absorb", "restart", "fail"


@functools.cache
def resending_links(config: Path) -> dict[str, str]:
    """``{link: module label}`` of the links a Controller in ``config`` resends on."""
    from ..distributed import Controller
    from ..framework import Process
    from ..framework.loader import load_class

    process = Process.from_toml(config)
    links: dict[str, str] = {}
    for module in process.modules.values():
        cls = load_class(module.type, process.base_dir, object, f"modules.{module.label}.type")
        if not issubclass(cls, Controller):
            continue
        if module.params.get("on_follower_loss") != "resend":
            continue
        names = [module.params["link"]] if module.params.get("link") else []
        names += list(module.params.get("links") or [])
        links.update({str(name): module.label for name in names})
    return links


@functools.cache
def is_follower(config: Path) -> bool:
    """True when ``config``'s source replays a controller's transitions."""
    return not config_roles(config).has_own_source


def check_failover(topology: Topology, engine: str) -> None:
    """Refuse failover settings the engine cannot honour (ConfigError: file, line, key)."""
    doc: TomlDocument | None = None
    for spec in topology.processes.values():
        if engine == "mpiexec":
            for link, label in resending_links(spec.config).items():
                raise ConfigError(
                    f"on_follower_loss = 'resend' (link {link!r}) cannot work in MPI MPMD mode, "
                    "where one mpiexec runs every process and the death of one ends them all: "
                    'set [run] mpi_mode = "port-file" in the topology (one mpiexec per '
                    "process), or use tcp/shm/ucx links",
                    file=str(spec.config),
                    key=f"modules.{label}.on_follower_loss",
                )
        if not spec.restarts:
            continue
        doc = doc or TomlDocument.load(topology.path)
        if engine in ("mpiexec", "embedded"):
            where = (
                'MPI MPMD mode (set [run] mpi_mode = "port-file")'
                if engine == "mpiexec"
                else "inproc:// links (every process is embedded in the launcher)"
            )
            raise doc.error(
                f"a process cannot be restarted alone with {where}",
                "process",
                spec.name,
                "restarts",
            )
        if not is_follower(spec.config):
            raise doc.error(
                "only a follower (source actors.distributed:FollowerSource) can be restarted: "
                "a replacement of this process would start its events again",
                "process",
                spec.name,
                "restarts",
            )


@dataclass
class LossPolicy:
    """The launcher's answer to the loss of each process of ``plan`` (see module doc)."""

    plan: LaunchPlan
    restarts_left: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.restarts_left = {p.name: p.spec.restarts for p in self.plan.processes}

    @property
    def absorbing(self) -> bool:
        return self.plan.on_process_loss != FAIL and self.plan.engine in (
            "subprocess",
            "mpiexec-per-process",
        )

    def absorbs(self, name: str) -> bool:
        """Whether the loss of process ``name`` is left to its controllers (any engine)."""
        proc = next((p for p in self.plan.processes if p.name == name), None)
        return proc is not None and self.plan.on_process_loss != FAIL and self._absorbed(proc)

    def decide(self, name: str) -> str:
        """ABSORB, RESTART or FAIL for process ``name``, which just ended non-zero."""
        proc = next((p for p in self.plan.processes if p.name == name), None)
        if proc is None or not self.absorbing or not self._absorbed(proc):
            return FAIL
        if self.restarts_left.get(name, 0) > 0:
            self.restarts_left[name] -= 1
            return RESTART
        return ABSORB

    def _absorbed(self, proc: ProcessLaunch) -> bool:
        """A follower whose every controller resends on the links it serves."""
        if not is_follower(proc.spec.config):
            return False
        served = [e for e in proc.links.endpoints.values() if e.role == "server"]
        if not served:
            return False
        by_name = {p.name: p for p in self.plan.processes}
        for endpoint in served:
            for client in endpoint.peer.split(","):
                other = by_name.get(client)
                if other is None or endpoint.name not in resending_links(other.spec.config):
                    return False
        return True
