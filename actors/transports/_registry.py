"""Registry of transport backends by URL scheme, and the public listen/connect.

Built-in backends are named by import path and imported on first use, so that
``import actors`` never imports mpi4py or ucxx. A backend whose dependency is
missing raises :class:`~actors.errors.BackendUnavailable` naming the extra.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import BackendUnavailable, ConfigError
from ._base import DEFAULT_MAX_MESSAGE_SIZE, Backend, Link, Listener

__all__ = [
    "available_schemes",
    "connect",
    "get_backend",
    "listen",
    "register_backend",
    "split_url",
]

_BUILTIN: dict[str, str] = {
    "inproc": "actors.transports.inproc:InprocBackend",
    "tcp": "actors.transports.stream.tcp:TCPBackend",
    "shm": "actors.transports.stream.shm:SHMBackend",
    "mpi": "actors.transports.mpi:MPIBackend",
    "ucx": "actors.transports.ucx:UCXBackend",
}
_ENTRY_POINT_GROUP = "actors.transports"
_registered: dict[str, str | Backend] = dict(_BUILTIN)
_instances: dict[str, Backend] = {}


def register_backend(scheme: str, backend: str | Backend) -> None:
    """Register ``backend`` (an instance, or ``"module:Class"`` imported lazily)."""
    _registered[scheme] = backend
    _instances.pop(scheme, None)


def split_url(url: str) -> tuple[str, str]:
    """``"tcp://h:1"`` -> ``("tcp", "h:1")``; raises ConfigError without a scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ConfigError(
            f"transport address {url!r} has no scheme; expected e.g. 'tcp://127.0.0.1:0' "
            f"(schemes: {', '.join(sorted(_registered))})"
        )
    return scheme, rest


def _load(spec: str) -> Backend:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    cls: Any = getattr(module, attr)
    backend = cls()
    if not isinstance(backend, Backend):
        raise TypeError(f"{spec} is not a transport Backend")
    return backend


def get_backend(scheme: str) -> Backend:
    """The backend for ``scheme``; imports it on first use.

    Raises ConfigError for an unknown scheme and BackendUnavailable when the
    backend's optional dependency is missing.
    """
    backend = _instances.get(scheme)
    if backend is not None:
        return backend
    spec = _registered.get(scheme)
    if spec is None:  # a third-party backend (importlib.metadata only now: it costs ~10 ms)
        from importlib.metadata import entry_points

        for ep in entry_points(group=_ENTRY_POINT_GROUP):
            if ep.name == scheme:
                spec = ep.value
                break
    if spec is None:
        raise ConfigError(
            f"unknown transport scheme {scheme!r}; known: {', '.join(sorted(_registered))}"
        )
    backend = spec if isinstance(spec, Backend) else _load(spec)
    _instances[scheme] = backend
    return backend


def available_schemes() -> list[str]:
    """Schemes whose backend imports on this machine (tries each one)."""
    found = []
    for scheme in _registered:
        try:
            get_backend(scheme)
        except (BackendUnavailable, ImportError):
            continue
        found.append(scheme)
    return found


def _secret_bytes(secret: bytes | str | None) -> bytes | None:
    if isinstance(secret, str):
        return secret.encode()
    return secret


async def listen(
    url: str,
    *,
    secret: bytes | str | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> Listener:
    """Listen at ``url``; returns a started Listener (an async context manager).

    ``listener.address`` is the URL actually bound. With ``secret``, only peers
    presenting the same secret are accepted. Messages larger than
    ``max_message_size`` are refused with ProtocolError.
    """
    scheme, rest = split_url(url)
    return await get_backend(scheme).listen(
        rest, secret=_secret_bytes(secret), max_message_size=max_message_size
    )


async def connect(
    url: str,
    *,
    secret: bytes | str | None = None,
    timeout: float = 10.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> Link:
    """Connect to the listener at ``url`` within ``timeout`` seconds.

    Raises PeerLost when nobody listens there in time, AuthenticationError when
    the secret is refused.
    """
    scheme, rest = split_url(url)
    return await get_backend(scheme).connect(
        rest,
        secret=_secret_bytes(secret),
        timeout=timeout,
        max_message_size=max_message_size,
    )
