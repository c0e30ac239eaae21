"""The one exception hierarchy of hep-actors.

Every error the library raises on purpose derives from :class:`ActorsError`, so a
user can catch everything of ours with one clause, and each layer adds its own
branch here (never in its own module). Exceptions that also fit a standard
category inherit from it too (``PeerLost`` is a ``ConnectionError``,
``AskTimeout`` a ``TimeoutError``), so generic handlers keep working.

Tree::

    ActorsError
    ├── ConfigError              bad configuration: names file, line, key
    ├── BackendUnavailable       optional dependency missing: names the extra
    ├── CodecError               no codec / undecodable payload: names the type
    ├── TransportError
    │   ├── PeerLost             peer died or disconnected (also ConnectionError)
    │   ├── ProtocolError        malformed or oversized frame from a peer
    │   └── AuthenticationError  wrong or missing shared secret
    ├── ActorError
    │   ├── ActorDead            actor stopped (pending and future asks)
    │   ├── AskTimeout           no reply in time (also TimeoutError)
    │   ├── ActorFailed          an actor's receive raised (escalated to supervisor)
    │   └── RemoteError          exception raised in a remote actor, re-raised here
    ├── FrameworkError
    │   ├── ModuleError          a module raised: label, transition/event id, traceback
    │   └── ProductNotFound      a product asked for is not in the event
    ├── DistributedError
    │   └── SchemaMismatch       the two sides of a link disagree: shows both views
    └── LaunchError              a process of a launched topology failed: names it
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActorDead",
    "ActorError",
    "ActorFailed",
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
    "TransportError",
]


class ActorsError(Exception):
    """Base class of every error raised on purpose by hep-actors."""


class ConfigError(ActorsError, ValueError):
    """A configuration (process TOML, topology TOML, options) is invalid.

    ``file``, ``line`` and ``key`` locate the problem where known; ``str(err)``
    shows them as ``file:line: key: message``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{message}")


class BackendUnavailable(ActorsError, ImportError):
    """An optional dependency is not installed.

    The message names the missing module and the extra that provides it, e.g.
    ``pip install 'hep-actors[mpi]'``; ``module``, ``extra``, ``detail`` (why the
    import failed) and ``hint`` (the install command) are there apart too.
    """

    def __init__(self, module: str, extra: str, detail: str = "") -> None:
        self.module = module
        self.extra = extra
        self.detail = detail
        msg = f"{module} is not available; install it with: {self.hint}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg, name=module)

    @property
    def hint(self) -> str:
        """The command that installs the missing extra."""
        return f"pip install 'hep-actors[{self.extra}]'"


class CodecError(ActorsError, TypeError):
    """An object cannot be encoded, or a payload cannot be decoded."""


class TransportError(ActorsError):
    """Base of link-level failures."""


class PeerLost(TransportError, ConnectionError):
    """The peer of a link died, disconnected or closed the link.

    Pending and later ``send``/``recv`` on that link raise it; it is never
    swallowed into a hang.
    """


class ProtocolError(TransportError):
    """A peer sent a malformed or oversized frame; the link is closed."""


class AuthenticationError(TransportError):
    """The shared secret presented at handshake did not match."""


class ActorError(ActorsError):
    """Base of actor-level failures."""


class ActorDead(ActorError):
    """The actor is stopped: a message sent to it cannot be processed."""


class AskTimeout(ActorError, TimeoutError):
    """No reply to an ``ask`` arrived within its timeout."""


class ActorFailed(ActorError):
    """An actor's ``receive`` raised while handling a ``tell``.

    Delivered to the supervisor (and raised from ``ActorSystem.__aexit__`` when
    escalated to the top). ``actor`` is the actor's name, ``message`` the
    message that failed, ``__cause__`` the original exception.
    """

    def __init__(self, actor: str, message: Any, cause: BaseException) -> None:
        self.actor = actor
        self.failed_message = message
        text = repr(message)
        if len(text) > 200:
            text = text[:200] + "..."
        super().__init__(f"actor {actor!r} failed on message {text}: {cause!r}")
        self.__cause__ = cause


class RemoteError(ActorError):
    """An exception raised in a remote actor, carried back to the asker.

    ``remote_type`` is the qualified name of the original exception class and
    ``remote_traceback`` its formatted traceback in the remote process.
    """

    def __init__(self, remote_type: str, message: str, remote_traceback: str = "") -> None:
        self.remote_type = remote_type
        self.remote_message = message
        self.remote_traceback = remote_traceback
        super().__init__(f"{remote_type}: {message}")


class FrameworkError(ActorsError):
    """Base of event-processing framework errors."""


class ModuleError(FrameworkError):
    """A module raised while processing a transition.

    ``label`` is the module label, ``transition`` what it was doing (e.g.
    ``"event 1:2:345"``), ``module_traceback`` the formatted traceback.
    """

    def __init__(
        self, label: str, transition: str, cause: BaseException, module_traceback: str = ""
    ) -> None:
        self.label = label
        self.transition = transition
        self.module_traceback = module_traceback
        super().__init__(f"module {label!r} failed in {transition}: {cause!r}")
        self.__cause__ = cause


class ProductNotFound(FrameworkError, KeyError):
    """A product asked for is not in the event (names the branch)."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0]) if self.args else ""


class DistributedError(ActorsError):
    """Base of distributed-layer errors (controller, follower, sender, receiver)."""


class SchemaMismatch(DistributedError):
    """Both sides of a link disagree about what travels; the message shows both."""


class LaunchError(ActorsError):
    """A topology started from Python did not succeed (see :mod:`actors.launch.api`).

    ``status`` is the launcher's exit status (124 after a timeout) and
    ``exit_codes`` each process's (or ``mpiexec``'s) exit code where known; the
    message names the processes that failed.
    """

    def __init__(self, message: str, *, status: int, exit_codes: dict[str, int]) -> None:
        self.status = status
        self.exit_codes = dict(exit_codes)
        super().__init__(message)
