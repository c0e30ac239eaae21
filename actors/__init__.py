"""hep-actors: distributed event processing on asyncio actors.

``import actors`` is cheap: it imports no optional backend (mpi4py, ucxx, cupy,
uproot, matplotlib); those load on first use.
"""

from __future__ import annotations

from .core.actor import Actor
from .core.ref import ActorRef
from .core.supervision import SupervisorPolicy
from .core.system import ActorSystem, preload
from .errors import (
    ActorDead,
    ActorError,
    ActorFailed,
    ActorsError,
    AskTimeout,
    AuthenticationError,
    BackendUnavailable,
    CodecError,
    ConfigError,
    DistributedError,
    FrameworkError,
    LaunchError,
    ModuleError,
    PeerLost,
    ProductNotFound,
    ProtocolError,
    RemoteError,
    SchemaMismatch,
    TransportError,
)


def __getattr__(name: str) -> str:
    """``actors.__version__``, read from the installed metadata on first use
    (importlib.metadata costs tens of milliseconds: ``import actors`` stays cheap)."""
    if name != "__version__":
        raise AttributeError(f"module 'actors' has no attribute {name!r}")
    from importlib import metadata

    try:
        return metadata.version("hep-actors")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


__all__ = [
    "Actor",
    "ActorDead",
    "ActorError",
    "ActorFailed",
    "ActorRef",
    "ActorSystem",
    "ActorsError",
    "AskTimeout",
    "AuthenticationError",
    "BackendUnavailable",
    "CodecError",
    "ConfigError",
    "DistributedError",
    "FrameworkError",
    "LaunchError",
    "ModuleError",
    "PeerLost",
    "ProductNotFound",
    "ProtocolError",
    "RemoteError",
    "SchemaMismatch",
    "SupervisorPolicy",
    "TransportError",
    "__version__",
    "preload",
]
