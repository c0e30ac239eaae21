"""The actor protocol on a link: frame headers and exceptions on the wire.

A frame is one transport message ``(header, buffers)``. ``header`` is the
msgpack array ``[kind, target, correlation_id, body_header]``; ``buffers``
are the codec's buffers (so numpy arrays travel as raw memory). ``body_header``
is the :func:`actors.codecs.encode` header of the payload, or for ``ERROR``
frames a msgpack map describing the exception (type, args, message, traceback)
with no buffers.

Requests go from the side that called ``system.remote`` (the client) to the
serving side; replies, errors and notices go back. Kinds:

======== ============================================================
TELL     deliver a message; no reply (a DEAD notice if the target is gone)
ASK      deliver a message; REPLY or ERROR with the same correlation id
STOP     stop the target; REPLY when stopped
LOOKUP   check that the target exists; REPLY or ERROR
REPLY    the answer to ASK/STOP/LOOKUP
ERROR    an exception for ASK/STOP/LOOKUP (correlation id > 0)
DEAD     notice: a TELL found no live target (correlation id 0)
======== ============================================================
"""

from __future__ import annotations

import builtins
import traceback
from typing import Any

import msgpack

from .. import errors
from ..errors import ProtocolError, RemoteError

__all__ = [
    "ASK",
    "DEAD",
    "ERROR",
    "KIND_NAMES",
    "LOOKUP",
    "REPLY",
    "STOP",
    "TELL",
    "exception_from_wire",
    "exception_to_wire",
    "pack_header",
    "unpack_header",
]

TELL, ASK, STOP, LOOKUP, REPLY, ERROR, DEAD = range(1, 8)
#: kind -> its name in stall reports
KIND_NAMES = {TELL: "tell", ASK: "ask", STOP: "stop", LOOKUP: "lookup", REPLY: "reply",
              ERROR: "error", DEAD: "dead"}  # fmt: skip
_KINDS = frozenset(range(1, 8))
_PLAIN = (str, int, float, bool, type(None))


def pack_header(kind: int, target: str, corr: int, body: bytes) -> bytes:
    """The frame header for one message."""
    return msgpack.packb((kind, target, corr, body), use_bin_type=True)  # type: ignore[no-any-return]


def unpack_header(header: bytes, peer: str) -> tuple[int, str, int, bytes]:
    """Parse a frame header; raises ProtocolError naming the peer if malformed."""
    try:
        kind, target, corr, body = msgpack.unpackb(header, raw=False, use_list=False)
    except Exception as exc:  # msgpack raises several types for garbage
        raise ProtocolError(f"malformed actor frame header from {peer}: {exc!r}") from None
    if (
        kind not in _KINDS
        or not isinstance(target, str)
        or not isinstance(corr, int)
        or not isinstance(body, bytes)
    ):
        raise ProtocolError(f"malformed actor frame header from {peer}: {header[:64]!r}")
    return kind, target, corr, body


def exception_to_wire(exc: BaseException) -> bytes:
    """Describe ``exc`` for the asker: type name, plain args, message, traceback."""
    cls = type(exc)
    args = list(exc.args) if all(isinstance(a, _PLAIN) for a in exc.args) else None
    info = {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "args": args,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    return msgpack.packb(info, use_bin_type=True)  # type: ignore[no-any-return]


def _known_class(type_name: str) -> type[Exception] | None:
    module, _, qualname = type_name.rpartition(".")
    candidate: Any = None
    if module == "builtins":
        candidate = getattr(builtins, qualname, None)
    elif module == errors.__name__ and qualname in errors.__all__:
        candidate = getattr(errors, qualname)
    if isinstance(candidate, type) and issubclass(candidate, Exception):
        return candidate
    return None


def exception_from_wire(body: bytes, where: str) -> Exception:
    """Rebuild a remote exception: the original type if builtin or ours, else RemoteError.

    ``where`` (e.g. ``"actor 'x' at tcp://..."``) goes into a note with the
    remote traceback.
    """
    try:
        info = msgpack.unpackb(body, raw=False)
        type_name, message = str(info["type"]), str(info["message"])
        args, remote_tb = info.get("args"), str(info.get("traceback", ""))
    except Exception as exc:
        return ProtocolError(f"malformed error reply from {where}: {exc!r}")
    cls = _known_class(type_name)
    if cls is None:
        return RemoteError(type_name, message, remote_tb)
    rebuilt = _instantiate(cls, args, message)
    rebuilt.add_note(f"raised by {where}; remote traceback:\n{remote_tb}")
    return rebuilt


def _instantiate(cls: type[Exception], args: Any, message: str) -> Exception:
    if isinstance(args, list):
        try:
            return cls(*args)
        except Exception:  # constructor with another signature (e.g. ActorFailed)
            pass
    exc = cls.__new__(cls)
    exc.args = (message,)
    return exc
