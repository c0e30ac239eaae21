"""The codec registry: stable type names -> codecs, and the pickle opt-in.

A codec turns one object into ``(meta, buffers)`` - ``meta`` plain msgpack-able
data (ints, floats, str, bytes, lists, dicts), ``buffers`` the object's own
memory regions - and back. Codecs are found by the object's exact type, then by
a few structural rules (numpy, cupy, awkward are recognised by module without
being imported), then along the MRO, then the pickle fallback when this process
opted in. Registration and lookup are thread-safe for the usual pattern
(register at import/start-up, look up from any thread).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..errors import CodecError
from ..settings import ALLOW_PICKLE

__all__ = [
    "Codec",
    "allow_pickle",
    "codec_by_name",
    "codec_for",
    "pickle_allowed",
    "register_codec",
]

PLAIN = "plain"
PICKLE = "pickle"


class Codec(Protocol):
    """Encodes objects of one type to ``(meta, buffers)`` and back.

    ``encode`` must not copy or concatenate the object's memory; every buffer
    is a C-contiguous host buffer or a device array. ``decode`` receives buffers
    as delivered by a transport (byte memoryviews/arrays, or device arrays) and
    should wrap them without copying. Both raise CodecError on bad input.
    """

    def encode(self, obj: Any) -> tuple[Any, list[Any]]: ...

    def decode(self, meta: Any, buffers: list[Any]) -> Any: ...


_by_name: dict[str, Codec] = {}
_by_type: dict[type, tuple[str, Codec]] = {}
#: types resolved structurally or along the MRO (cleared on every registration)
_resolved: dict[type, tuple[str, Codec]] = {}
#: (predicate on the type, name) checked in order when the exact type is unknown
_structural: list[tuple[Callable[[type], bool], str]] = []
#: allow_pickle()'s choice; None: the ACTORS_ALLOW_PICKLE setting decides
_pickle_choice: bool | None = None


def register_codec(cls: type | None, codec: Codec, name: str | None = None) -> str:
    """Register ``codec`` for objects of type ``cls`` under the stable ``name``.

    ``name`` defaults to ``module.QualName`` of ``cls``; pick a stable name if
    the class may move. Registering ``cls=None`` adds a codec reachable by name
    only (decoding). Returns the name. Re-registering a name replaces it.
    """
    if name is None:
        if cls is None:
            raise ValueError("register_codec(None, ...) needs a name")
        name = f"{cls.__module__}.{cls.__qualname__}"
    _by_name[name] = codec
    if cls is not None:
        _by_type[cls] = (name, codec)
    _resolved.clear()
    return name


def register_structural(predicate: Callable[[type], bool], name: str) -> None:
    """Find codec ``name`` for any type satisfying ``predicate`` (built-ins use this)."""
    _structural.append((predicate, name))
    _resolved.clear()


def allow_pickle(enabled: bool = True) -> None:
    """Opt this process in (or out) of the pickle fallback, for encoding AND decoding.

    Unpickling data from a peer lets that peer run code here: enable it only
    between processes you trust. Also enabled by ``ACTORS_ALLOW_PICKLE=1``.
    """
    global _pickle_choice
    _pickle_choice = enabled


def pickle_allowed() -> bool:
    """Whether this process opted into the pickle fallback (allow_pickle, else the setting)."""
    return ALLOW_PICKLE.get() if _pickle_choice is None else _pickle_choice


def codec_for(obj: Any) -> tuple[str, Codec]:
    """The ``(name, codec)`` that encodes ``obj``; raises CodecError if none.

    Order: the exact type, the structural rules (numpy/cupy/awkward by module),
    the registered base classes along the MRO, then pickle if opted in.
    """
    cls = type(obj)
    found = _by_type.get(cls) or _resolved.get(cls)
    if found is not None:
        return found
    found = _resolve(cls)
    if found is not None:
        _resolved[cls] = found
        return found
    if pickle_allowed():
        return PICKLE, _by_name[PICKLE]
    raise CodecError(
        f"no codec for type {cls.__module__}.{cls.__qualname__}: register one with "
        "actors.codecs.register_codec(cls, codec, name=...), or actors.codecs.register_layout(cls) "
        "for a dataclass of arrays, or opt this process into pickle with "
        "actors.codecs.allow_pickle() (only between trusted processes)"
    )


def _resolve(cls: type) -> tuple[str, Codec] | None:
    for predicate, name in _structural:
        if predicate(cls):
            return name, _by_name[name]
    for base in cls.__mro__[1:-1]:  # [-1] is object
        found = _by_type.get(base)
        if found is not None:
            return found
    return None


def codec_by_name(name: str) -> Codec:
    """The codec registered as ``name``; raises CodecError naming it if unknown."""
    codec = _by_name.get(name)
    if codec is None:
        raise CodecError(
            f"unknown codec {name!r}: the receiving process has no codec registered under "
            "this name (register the same type with actors.codecs.register_codec on both sides)"
        )
    if name == PICKLE and not pickle_allowed():
        raise CodecError(
            "received a pickled object but this process did not opt into pickle "
            "(actors.codecs.allow_pickle() or ACTORS_ALLOW_PICKLE=1)"
        )
    return codec
