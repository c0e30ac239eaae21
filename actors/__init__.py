"""hep-actors: distributed event processing on asyncio actors.

``import actors`` is cheap: it imports no optional backend (mpi4py, ucxx, cupy,
uproot, matplotlib); those load on first use.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from .core.actor import Actor
from .core.ref import ActorRef
from .core.supervision import SupervisorPolicy
from .core.system import ActorSystem
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

try:
    __version__ = _metadata.version("hep-actors")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

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
]
