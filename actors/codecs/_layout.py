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

Scalars must be plain data (None, bool, int, float, str, bytes, lists/dicts of
those). Fields holding other objects raise CodecError naming class and field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..buffers import is_device
from ..errors import CodecError
from ._arrays import CupyCodec, NumpyCodec
from ._registry import register_codec

__all__ = ["register_layout"]

T = TypeVar("T", bound=type)
_NUMPY = NumpyCodec()
_CUPY = CupyCodec()
_PLAIN = (type(None), bool, int, float, str, bytes, list, dict)


class LayoutCodec:
    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fields = [f.name for f in dataclasses.fields(cls)]

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        columns: list[Any] = []
        scalars: dict[str, Any] = {}
        buffers: list[Any] = []
        for name in self.fields:
            value = getattr(obj, name)
            if is_device(value):
                meta, bufs = _CUPY.encode(value)
                columns.append([name, "cupy", meta])
            elif hasattr(value, "__array_interface__") and hasattr(value, "dtype"):
                meta, bufs = _NUMPY.encode(value)
                columns.append([name, "numpy", meta])
            elif isinstance(value, _PLAIN):
                scalars[name] = value
                continue
            else:
                raise CodecError(
                    f"field {name!r} of layout {self.cls.__qualname__} holds a "
                    f"{type(value).__qualname__}: layout fields are arrays or plain scalars"
                )
            buffers.extend(bufs)
        return [columns, scalars], buffers

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        columns, scalars = meta
        if len(columns) != len(buffers):
            raise CodecError(
                f"layout {self.cls.__qualname__}: {len(columns)} columns but {len(buffers)} buffers"
            )
        values = dict(scalars)
        for (name, kind, col_meta), buffer in zip(columns, buffers, strict=True):
            codec = _CUPY if kind == "cupy" else _NUMPY
            values[name] = codec.decode(col_meta, [buffer])
        try:
            return self.cls(**values)
        except TypeError as exc:
            raise CodecError(f"cannot rebuild layout {self.cls.__qualname__}: {exc}") from exc


def register_layout(cls: T | None = None, *, name: str | None = None) -> Any:
    """Register a dataclass as a structure-of-arrays layout; usable as a decorator.

    ``@register_layout`` or ``register_layout(MyClass, name="reco.Muons")``.
    Raises TypeError if ``cls`` is not a dataclass.
    """

    def apply(target: T) -> T:
        if not dataclasses.is_dataclass(target):
            raise TypeError(f"register_layout needs a dataclass, got {target!r}")
        register_codec(target, LayoutCodec(target), name)
        return target

    return apply if cls is None else apply(cls)
