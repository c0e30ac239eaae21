"""ROOT input through uproot: TTrees and RNTuples, read in chunks.

Configuration (TOML)::

    [source]
    type = "actors.framework.io:RootSource"
    file = "nano.root"            # or a list of files, read one after the other
    tree = "Events"               # a TTree or an RNTuple
    branches = ["Muon_*", "nMuon"]  # wildcards * and ?; default ["*"]
    step_size = 1000              # entries per chunk (or a size such as "50 MB")
    events_per_lumi = 100         # only when the file has no luminosityBlock branch
    jagged = "awkward"            # or "numpy"
    soa = ["Muon"]                # optional: group Muon_* into one SoA product "Muon"

Contract:

* Each selected branch becomes a product with label = the source's label and
  instance = the branch name (``Muon_pt`` -> ``*_source_Muon_pt_*``). Types:
  a number per event is a numpy scalar (branch type = its dtype name,
  ``float32``...); a jagged branch is a 1-D ``awkward.Array`` (type
  ``awkward.Array``) or, with ``jagged = "numpy"``, a read-only 1-D numpy view
  (type ``numpy.ndarray``); anything else is the event's awkward value. With
  ``soa = ["Muon"]`` the jagged ``Muon_*`` branches become one product
  ``Muon`` of type ``SoA`` (:class:`~actors.framework.io.soa.SoA`, columns
  ``pt``, ``eta``... and offsets) instead of separate products.
* ``run``/``luminosityBlock``/``event`` come from the branches of those names
  when present (they are not products); otherwise run = 1, event = entry + 1
  and lumi = 1 + entry // ``events_per_lumi`` (entry counted over all files).
* Transitions follow the file: a change of run or lumi between consecutive
  entries ends the open lumi (and run) and begins the next, in file order.
* At most one chunk of ``step_size`` entries per file is in memory; the file is
  closed when the iterator ends or is closed (``--events N``).
* Errors: missing uproot/awkward -> BackendUnavailable (extra ``hep``); a
  missing file, tree or branch, or a later file whose branches differ ->
  ConfigError naming the file and key.
* Threading: ``blocking = True``, the framework advances the iterator in a
  worker thread, one ``next`` at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from ..._optional import optional_module
from ...codecs import plain_awkward_arrays
from ...errors import ConfigError, FrameworkError
from ..event import EventID
from ..module import Declarer
from ..source import BeginLumi, BeginRun, EndLumi, EndRun, EventTransition, Source, Transition
from ._uproot import (
    ID_BRANCHES,
    JAGGED,
    SCALAR,
    Column,
    classify,
    jagged_parts,
    open_tree,
    select_branches,
)
from .soa import SoA

__all__ = ["RootSource"]

Getter = Callable[[int], Any]


class RootSource(Source):
    """Events of a ROOT TTree or RNTuple (see the module docstring)."""

    blocking: ClassVar[bool] = True

    def __init__(
        self,
        *,
        file: str | Sequence[str],
        tree: str = "Events",
        branches: Sequence[str] = ("*",),
        step_size: int | str = 1000,
        events_per_lumi: int = 100,
        jagged: str = "awkward",
        soa: Sequence[str] = (),
    ) -> None:
        self.files = [file] if isinstance(file, str) else list(file)
        if not self.files or not all(isinstance(f, str) for f in self.files):
            raise ConfigError("expected a file name or a list of file names", key="source.file")
        self.tree = tree
        self.patterns = [branches] if isinstance(branches, str) else list(branches)
        if (
            isinstance(step_size, bool)
            or not isinstance(step_size, int | str)
            or (isinstance(step_size, int) and step_size < 1)
        ):
            raise ConfigError(
                f"must be entries >= 1 or a size, not {step_size!r}", key="source.step_size"
            )
        self.step_size = step_size
        if not isinstance(events_per_lumi, int) or events_per_lumi < 1:
            raise ConfigError(
                f"must be an integer >= 1, not {events_per_lumi!r}", key="source.events_per_lumi"
            )
        self.events_per_lumi = events_per_lumi
        if jagged not in ("awkward", "numpy"):
            raise ConfigError(f"must be 'awkward' or 'numpy', not {jagged!r}", key="source.jagged")
        self.jagged = jagged
        self.soa = [soa] if isinstance(soa, str) else list(soa)
        self._columns: list[Column] | None = None
        self._ids: tuple[str, ...] = ()

    # -- declaration
    def _inspect(self) -> list[Column]:
        """Selected columns and ID branches of the first file (cached)."""
        if self._columns is None:
            handle, obj = open_tree(self.files[0], self.tree)
            try:
                names = select_branches(obj, self.patterns, self.files[0])
                self._columns = classify(obj, names)
                self._ids = tuple(b for b in ID_BRANCHES if b in set(obj.keys()))
            finally:
                handle.close()
        return self._columns

    def _groups(self) -> dict[str, list[Column]]:
        """SoA groups: collection name -> its jagged columns."""
        columns = self._inspect()
        groups: dict[str, list[Column]] = {}
        for name in self.soa:
            members = [c for c in columns if c.kind == JAGGED and c.name.startswith(name + "_")]
            if not members:
                raise ConfigError(
                    f"soa collection {name!r}: no selected jagged branch {name}_*",
                    file=self.files[0],
                    key="source.soa",
                )
            groups[name] = members
        return groups

    def declare(self, d: Declarer) -> None:
        grouped = {c.name for members in self._groups().values() for c in members}
        for name in self._groups():
            d.produces("SoA", name)
        for column in self._inspect():
            if column.name in grouped:
                continue
            if column.kind == SCALAR:
                assert column.dtype is not None
                d.produces(column.dtype.name, column.name)
            elif column.kind == JAGGED and self.jagged == "numpy":
                d.produces("numpy.ndarray", column.name)
            else:
                d.produces("awkward.Array", column.name)

    # -- reading
    def transitions(self) -> Iterator[Transition]:
        return self._transitions()

    def _transitions(self) -> Iterator[Transition]:
        columns = self._inspect()
        groups = self._groups()
        run: int | None = None
        lumi: int | None = None
        entry = 0
        for path in self.files:
            for ids, getters, n in self._chunks(path, columns, groups, entry):
                for i in range(n):
                    r, lu, ev = int(ids[0][i]), int(ids[1][i]), int(ids[2][i])
                    if r != run or lu != lumi:
                        if lumi is not None and run is not None:
                            yield EndLumi(run, lumi)
                        if r != run:
                            if run is not None:
                                yield EndRun(run)
                            yield BeginRun(r)
                        run, lumi = r, lu
                        yield BeginLumi(r, lu)
                    products = {key: get(i) for key, get in getters}
                    yield EventTransition(EventID(r, lu, ev), products)
                entry += n
        if run is not None and lumi is not None:
            yield EndLumi(run, lumi)
            yield EndRun(run)

    def _chunks(
        self, path: str, columns: list[Column], groups: dict[str, list[Column]], first: int
    ) -> Iterator[tuple[list[np.ndarray[Any, Any]], list[tuple[str, Getter]], int]]:
        """Per chunk: (run, lumi, event) arrays, per-product getters, entry count."""
        handle, obj = open_tree(path, self.tree)
        try:
            self._check_same(obj, path, columns)
            names = [c.name for c in columns] + list(self._ids)
            if not names:
                yield from self._bare_chunks(obj.num_entries, first)
                return
            start = first
            for chunk in obj.iterate(names, step_size=self.step_size, library="ak"):
                n = len(chunk)
                ids = self._event_ids(chunk, start, n)
                yield ids, self._getters(chunk, columns, groups), n
                start += n
        finally:
            handle.close()

    def _bare_chunks(
        self, total: int, first: int
    ) -> Iterator[tuple[list[np.ndarray[Any, Any]], list[tuple[str, Getter]], int]]:
        step = self.step_size if isinstance(self.step_size, int) else 1000
        for start in range(0, total, step):
            n = min(step, total - start)
            yield self._event_ids(None, first + start, n), [], n

    def _event_ids(self, chunk: Any, start: int, n: int) -> list[np.ndarray[Any, Any]]:
        entries = np.arange(start, start + n, dtype=np.int64)
        defaults = {
            "run": np.ones(n, dtype=np.int64),
            "luminosityBlock": 1 + entries // self.events_per_lumi,
            "event": entries + 1,
        }
        ak = optional_module("awkward", "hep")
        return [ak.to_numpy(chunk[b]) if b in self._ids else defaults[b] for b in ID_BRANCHES]

    def _check_same(self, obj: Any, path: str, columns: list[Column]) -> None:
        if path == self.files[0]:
            return
        keys = set(obj.keys())
        missing = [c.name for c in columns if c.name not in keys]
        missing += [b for b in self._ids if b not in keys]
        if missing:
            raise ConfigError(
                f"branches {missing} of the first input file are missing here",
                file=path,
                key="source.file",
            )

    def _getters(
        self, chunk: Any, columns: list[Column], groups: dict[str, list[Column]]
    ) -> list[tuple[str, Getter]]:
        getters: list[tuple[str, Getter]] = []
        grouped: set[str] = set()
        for name, members in groups.items():
            getters.append((name, _soa_getter(chunk, name, members)))
            grouped.update(c.name for c in members)
        for column in columns:
            if column.name in grouped:
                continue
            getters.append((column.name, self._getter(chunk[column.name], column)))
        return getters

    def _getter(self, array: Any, column: Column) -> Getter:
        ak = optional_module("awkward", "hep")
        if column.kind == SCALAR:
            values = ak.to_numpy(array)
            return values.__getitem__  # type: ignore[no-any-return]
        if column.kind == JAGGED:
            content, offsets = jagged_parts(array)
            content.flags.writeable = False
            if self.jagged == "numpy":
                return lambda i: content[offsets[i] : offsets[i + 1]]
            plain = plain_awkward_arrays().numpy_array  # ak.Array(NumpyArray(...)), cheaper
            return lambda i: plain(content[offsets[i] : offsets[i + 1]])
        return array.__getitem__  # type: ignore[no-any-return]


def _soa_getter(chunk: Any, name: str, members: list[Column]) -> Getter:
    parts = {c.name[len(name) + 1 :]: jagged_parts(chunk[c.name]) for c in members}
    offsets = next(iter(parts.values()))[1]
    for field, (content, offs) in parts.items():
        if not np.array_equal(offs, offsets):
            raise FrameworkError(
                f"soa collection {name!r}: branch {name}_{field} has different "
                f"per-event counts than {name}_{next(iter(parts))}"
            )
        content.flags.writeable = False

    def get(i: int) -> SoA:
        start, stop = offsets[i], offsets[i + 1]
        return SoA({f: c[start:stop] for f, (c, _) in parts.items()}, [0, stop - start])

    return get
