"""The built-in codecs' registration, without importing numpy, awkward or cupy.

Importing :mod:`actors.codecs` (and so starting an actor system that serves or
calls remote actors) costs no numpy import (~60 ms): the array codecs are
registered as :class:`LazyCodec` stand-ins and recognised structurally - by
the object's module, and by ``issubclass`` against numpy only once numpy is
in ``sys.modules`` (an object of a numpy type implies that). The first
encode or decode through a stand-in imports its module, and re-registers
the real codec (numpy arrays then by their exact type again). The pickle
and refusal codecs need no third-party module and are registered directly.

Thread rules: as the registry's (register at start-up, look up anywhere); two
threads loading one stand-in at once both get a working codec.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from typing import Any

from ..errors import CodecError
from ._registry import PICKLE, Codec, register_codec, register_structural

__all__ = ["LazyCodec", "PickleCodec", "RefusedCodec", "register_builtin_codecs"]


class LazyCodec:
    """Stands for the codec class ``attr`` of module ``module`` (relative to this
    package) until the first encode/decode, which imports it and registers
    it as ``name`` (and for its ``exact_type``, when the class names one)."""

    __slots__ = ("_attr", "_codec", "_module", "_name")

    def __init__(self, module: str, attr: str, name: str) -> None:
        self._module, self._attr, self._name = module, attr, name
        self._codec: Codec | None = None

    def load(self) -> Codec:
        """The real codec (imported and registered on the first call)."""
        codec = self._codec
        if codec is None:
            module = importlib.import_module(self._module, __package__)
            codec = self._codec = getattr(module, self._attr)()
            register_codec(getattr(codec, "exact_type", None), codec, self._name)
        return codec

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        return self.load().encode(obj)

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        return self.load().decode(meta, buffers)


class RefusedCodec:
    """Stands for types that look like arrays but would lose data as one."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        raise CodecError(f"cannot encode {type(obj).__qualname__}: {self.reason}")

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        raise CodecError(self.reason)


class PickleCodec:
    """Pickle protocol 5 with out-of-band buffers; only with the per-process opt-in."""

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        buffers: list[Any] = []
        try:
            data = pickle.dumps(obj, protocol=5, buffer_callback=lambda b: buffers.append(b.raw()))
        except Exception as exc:
            raise CodecError(f"cannot pickle {type(obj).__qualname__}: {exc}") from exc
        return data, buffers

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        try:
            return pickle.loads(meta, buffers=buffers)
        except Exception as exc:
            raise CodecError(f"cannot unpickle payload: {exc}") from exc


def _top_module(cls: type) -> str:
    return cls.__module__.partition(".")[0]


def _is_masked_array(cls: type) -> bool:
    return cls.__module__.startswith("numpy.ma")


def _is_numpy_scalar(cls: type) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and issubclass(cls, np.generic)


def _is_numpy_array(cls: type) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and issubclass(cls, np.ndarray)


def _is_cupy_array(cls: type) -> bool:
    return _top_module(cls) == "cupy" and cls.__name__ == "ndarray"


def _is_awkward_array(cls: type) -> bool:
    return _top_module(cls) == "awkward" and cls.__name__ == "Array"


def _register_lazy(module: str, attr: str, name: str) -> None:
    register_codec(None, LazyCodec(module, attr, name), name)


def register_builtin_codecs() -> None:
    """Register the numpy, cupy, awkward and pickle codecs (imports none of them)."""
    _register_lazy("._arrays", "NumpyCodec", "numpy.ndarray")
    _register_lazy("._arrays", "NumpyScalarCodec", "numpy.scalar")
    masked = RefusedCodec(
        "numpy masked arrays would lose their mask; send .data and .mask as two arrays"
    )
    register_codec(None, masked, "numpy.ma.MaskedArray")
    register_structural(_is_masked_array, "numpy.ma.MaskedArray")
    register_structural(_is_numpy_scalar, "numpy.scalar")
    register_structural(_is_numpy_array, "numpy.ndarray")
    _register_lazy("._arrays", "CupyCodec", "cupy.ndarray")
    register_structural(_is_cupy_array, "cupy.ndarray")
    _register_lazy("._awkward", "AwkwardCodec", "awkward.Array")
    register_structural(_is_awkward_array, "awkward.Array")
    register_codec(None, PickleCodec(), PICKLE)
