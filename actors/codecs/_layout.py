"""Structure-of-arrays products: a registered dataclass whose array fields are columns.

The analog of CMSSW's ``MemoryCopyTraits``: each array column (numpy or cupy)
travels as its own memory region, scalar fields travel in the metadata::

    @register_layout
    @dataclass
    class MuonSoA:
        pt: np.ndarray
        eta: np.ndarray
        phi: np.ndarray
        n: int

Scalar fields that are plain msgpack data (None, bool, int, float, str, bytes)
travel in the metadata; every other field (arrays, numpy scalars, lists, dicts,
other registered types) is encoded by its own codec, so an array column is
exactly one buffer. A field with no codec raises CodecError naming the layout
and the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import CodecError
from ._envelope import decode_parts, encode_parts, is_plain
from ._registry import register_codec

__all__ = ["LayoutCodec", "register_layout"]

T = TypeVar("T", bound=type)


class LayoutCodec:
    """meta = ``[[field, codec name, meta, buffer count] per column, {field: scalar}]``."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fields = [f.name for f in dataclasses.fields(cls)]
        self.init_fields = frozenset(f.name for f in dataclasses.fields(cls) if f.init)

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        columns: list[Any] = []
        scalars: dict[str, Any] = {}
        buffers: list[Any] = []
        for field in self.fields:
            value = getattr(obj, field)
            if is_plain(value):
                scalars[field] = value
                continue
            try:
                name, meta, bufs = encode_parts(value)
            except CodecError as exc:
                raise CodecError(f"field {field!r} of layout {self._name()}: {exc}") from exc
            columns.append([field, name, meta, len(bufs)])
            buffers.extend(bufs)
        return [columns, scalars], buffers

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        columns, scalars = meta
        values = dict(scalars)
        first = 0
        for field, name, col_meta, count in columns:
            if first + count > len(buffers):
                raise CodecError(
                    f"layout {self._name()}: column {field!r} needs buffers beyond "
                    f"the {len(buffers)} that arrived"
                )
            values[field] = decode_parts(name, col_meta, buffers[first : first + count])
            first += count
        if first != len(buffers):
            raise CodecError(
                f"layout {self._name()}: {len(buffers)} buffers arrived for {first} column buffers"
            )
        return self._build(values)

    def _build(self, values: dict[str, Any]) -> Any:
        init = {k: v for k, v in values.items() if k in self.init_fields}
        try:
            obj = self.cls(**init)
        except TypeError as exc:
            raise CodecError(f"cannot rebuild layout {self._name()}: {exc}") from exc
        for field, value in values.items():
            if field not in self.init_fields:
                object.__setattr__(obj, field, value)
        return obj

    def _name(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


def register_layout(cls: T | None = None, name: str | None = None) -> Any:
    """Register a dataclass as a structure-of-arrays layout; usable as a decorator.

    ``@register_layout``, ``@register_layout(name="reco.Muons")`` or
    ``register_layout(MyClass, name="reco.Muons")``. The name (default
    ``module.QualName``) must be the same on both sides. Returns the class.
    Raises TypeError if ``cls`` is not a dataclass.
    """

    def apply(target: T) -> T:
        if not (isinstance(target, type) and dataclasses.is_dataclass(target)):
            raise TypeError(f"register_layout needs a dataclass type, got {target!r}")
        register_codec(target, LayoutCodec(target), name)
        return target

    return apply if cls is None else apply(cls)
