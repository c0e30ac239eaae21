"""uproot/awkward helpers shared by the ROOT source and output (lazy imports).

Nothing here imports uproot or awkward at module import time: the functions
do, and raise :class:`~actors.errors.BackendUnavailable` (extra ``hep``) when
they are missing.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._optional import optional_module
from ...errors import ConfigError

ID_BRANCHES = ("run", "luminosityBlock", "event")

# How a branch's per-event values look.
SCALAR = "scalar"  # one number per event -> numpy scalar
JAGGED = "jagged"  # a variable-length list of numbers per event
OTHER = "other"  # anything else -> per-event awkward value


def open_tree(path: str, tree: str) -> tuple[Any, Any]:
    """Open ``path`` and return ``(file, tree_or_rntuple)``; ConfigError names file and tree.

    The caller closes the file. TTrees and RNTuples both qualify: the caller
    uses only ``keys``, ``num_entries``, ``arrays`` and ``iterate``.
    """
    uproot = optional_module("uproot", "hep")
    try:
        handle = uproot.open(path)
    except FileNotFoundError:
        raise ConfigError(f"input file not found: {path}", file=path, key="source.file") from None
    except Exception as exc:
        message = f"cannot open as a ROOT file: {exc}"
        raise ConfigError(message, file=path, key="source.file") from exc
    try:
        obj = handle[tree]
    except Exception:
        names = sorted({k.split(";")[0] for k in handle.keys(recursive=False)})
        handle.close()
        raise ConfigError(
            f"no tree or RNTuple {tree!r} in the file (it has: {names})",
            file=path,
            key="source.tree",
        ) from None
    if not hasattr(obj, "iterate") or not hasattr(obj, "num_entries"):
        handle.close()
        raise ConfigError(
            f"{tree!r} is a {type(obj).__name__}, not a TTree or RNTuple",
            file=path,
            key="source.tree",
        )
    return handle, obj


def select_branches(obj: Any, patterns: Sequence[str], path: str) -> list[str]:
    """Top-level branch/field names matching any pattern (``*``/``?`` wildcards).

    Names come in file order; the ID branches are excluded (they make the
    EventID). A pattern that matches nothing is a ConfigError naming the file.
    """
    all_keys: list[str] = list(obj.keys())
    keys = [k for k in all_keys if "/" not in k and "." not in k]
    chosen: list[str] = []
    for pattern in patterns:
        matched = [k for k in keys if fnmatch.fnmatchcase(k, pattern)]
        if not matched:
            raise ConfigError(
                f"branch pattern {pattern!r} matches no branch of the input",
                file=path,
                key="source.branches",
            )
        chosen.extend(m for m in matched if m not in chosen and m not in ID_BRANCHES)
    order = {k: i for i, k in enumerate(keys)}
    return sorted(chosen, key=order.__getitem__)


@dataclass(frozen=True, slots=True)
class Column:
    """A selected branch: its name, kind (SCALAR/JAGGED/OTHER) and number dtype."""

    name: str
    kind: str
    dtype: np.dtype[Any] | None


def classify(obj: Any, names: Sequence[str]) -> list[Column]:
    """Kinds of ``names``, from the form of the first entry (works for empty inputs too)."""
    if not names:
        return []
    ak = optional_module("awkward", "hep")
    sample = obj.arrays(list(names), entry_start=0, entry_stop=min(1, obj.num_entries))
    out = []
    for name in names:
        form = sample[name].layout.form
        if isinstance(form, ak.forms.NumpyForm) and not form.inner_shape:
            out.append(Column(name, SCALAR, np.dtype(form.primitive)))
        elif (
            isinstance(form, ak.forms.ListOffsetForm | ak.forms.ListForm)
            and isinstance(form.content, ak.forms.NumpyForm)
            and not form.content.inner_shape
        ):
            out.append(Column(name, JAGGED, np.dtype(form.content.primitive)))
        else:
            out.append(Column(name, OTHER, None))
    return out


def jagged_parts(array: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """``(content, offsets)`` numpy arrays of a 1-level jagged awkward array."""
    ak = optional_module("awkward", "hep")
    packed = ak.to_packed(array)
    offsets = np.asarray(packed.layout.offsets, dtype=np.int64)
    content = ak.to_numpy(ak.flatten(packed, axis=1))
    return content, offsets - offsets[0]
