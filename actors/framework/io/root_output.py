"""ROOT output through uproot: selected products of accepted events, in input order.

Configuration (TOML)::

    [modules.out]
    type = "actors.framework.io:RootOutput"
    file = "out.root"
    tree = "Events"
    select_events = ["p"]                  # trigger paths; empty = every event
    output_commands = ["drop *", "keep *_dimuon_*_*"]
    names = { "*_dimuon_mass_*" = "mass" }  # optional column names per selection
    flush_events = 1000                    # rows per basket written

Contract:

* The TTree ``tree`` gets one entry per written event with branches ``run``
  and ``luminosityBlock`` (uint32), ``event`` (uint64), and one column per kept
  product. A column is named by the first matching ``names`` selection, else
  the product's instance, else (empty instance) its module label. Numbers
  become flat branches (dtype from the value, or from the branch type name
  when it is a numpy dtype), 1-D numpy/awkward arrays jagged branches
  (``nX`` counter), an :class:`~actors.framework.io.soa.SoA` ``X`` the
  branches ``nX``, ``X_col``... like NanoAOD.
* Entries are in the input's event order whatever the number of streams: the
  framework calls ``write`` in input order; rows are also sorted by input
  index within each flushed chunk, and an event older than one already written
  raises FrameworkError.
* Every entry must hold every column: a product kept in one event but
  missing in another raises FrameworkError naming the branch and event.
* With no event written the file still holds the tree, with the ID branches
  and the columns of kept products whose type name is a numpy dtype.
* The file is opened at the first flush or at ``end_job`` and closed at
  ``end_job``; after a failed job ``close()`` closes it as it is (the
  chunks flushed before the failure, without the rows still buffered).
  Errors name the file. Missing uproot/awkward ->
  BackendUnavailable (extra ``hep``).
* Calls come one at a time (LEGACY concurrency) and run on the event loop
  (``run_on_loop``): buffering an event's row takes microseconds, less than
  a hand-over to a worker thread. Writing a chunk (every ``flush_events``
  rows, and at ``end_job``) runs in a thread of its own, so the loop goes
  on with the other modules and the links meanwhile; the call finishes when
  the chunk is written, and the next one waits for it. With ``threads = 0``
  the chunk is written on the loop, like every other module's work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ..._optional import optional_module
from ...errors import ConfigError, FrameworkError
from ..branch import Branch, Selection
from ..event import OutputEvent
from ..module import Declarer, OutputModule, Token
from ._columns import empty_column, to_column

__all__ = ["RootOutput"]

_ID_TYPES = {"run": np.uint32, "luminosityBlock": np.uint32, "event": np.uint64}


class RootOutput(OutputModule):
    """Writes a flat ROOT TTree (see the module docstring)."""

    run_on_loop: ClassVar[bool] = True

    def __init__(
        self,
        *,
        file: str,
        tree: str = "Events",
        select_events: Sequence[str] = (),
        output_commands: Sequence[str] = ("keep *",),
        names: Mapping[str, str] | None = None,
        flush_events: int = 1000,
    ) -> None:
        super().__init__(select_events=select_events, output_commands=output_commands)
        if not isinstance(file, str) or not file:
            raise ConfigError("expected an output file name", key="file")
        self.file = file
        self.tree = tree
        self.names = [(Selection(sel), col) for sel, col in (names or {}).items()]
        if not isinstance(flush_events, int) or flush_events < 1:
            raise ConfigError(f"must be an integer >= 1, not {flush_events!r}", key="flush_events")
        self.flush_events = flush_events
        self._tokens: list[Token] = []
        self._column_of: dict[Branch, str] = {}
        self._rows: list[OutputEvent] = []
        self._last_index = -1
        self._file: Any = None
        self._file_lock = threading.Lock()  # a chunk write against close() after a failure
        self._closed = False
        self._columns: tuple[str, ...] | None = None

    def declare(self, d: Declarer) -> None:
        # Consume what the keep statements select, so that the framework runs
        # the producers of kept products and tells us their branches.
        for statement in self.output_commands.statements:
            verb, _, selection = statement.partition(" ")
            if verb == "keep":
                self._tokens.append(d.consumes(selection.strip(), optional=True))

    def column_name(self, branch: Branch) -> str:
        """The TTree column of a kept ``branch``; FrameworkError on a clash."""
        name = self._column_of.get(branch)
        if name is not None:
            return name
        name = next((col for sel, col in self.names if sel.matches(branch)), None)
        name = name or branch.instance or branch.label
        for other, taken in self._column_of.items():
            if taken == name:
                raise FrameworkError(
                    f"output {self.file!r}: products {other} and {branch} both map to "
                    f"column {name!r}; give one a name with the 'names' parameter"
                )
        if name in _ID_TYPES:
            raise FrameworkError(
                f"output {self.file!r}: product {branch} maps to reserved "
                f"column {name!r}; rename it with 'names'"
            )
        self._column_of[branch] = name
        return name

    def write(self, event: OutputEvent) -> Awaitable[None] | None:
        """Buffer ``event``'s row; every ``flush_events`` rows, the awaitable that
        writes them (see the module docstring). FrameworkError on an event out
        of input order."""
        if event.index <= self._last_index:
            raise FrameworkError(
                f"output {self.file!r}: event {event.id} (input index {event.index}) comes "
                f"after input index {self._last_index} was written; output must be in input order"
            )
        self._rows.append(event)
        if len(self._rows) >= self.flush_events:
            return self._off_loop(self.flush)
        return None

    def _off_loop(self, work: Callable[[], None]) -> Awaitable[None] | None:
        """``work`` in a thread of its own (an awaitable), or done here (None) in a
        process without worker threads or outside an event loop."""
        options = self.job_options
        if (options is not None and options.threads == 0) or not _loop_running():
            work()
            return None
        return asyncio.to_thread(work)

    def flush(self) -> None:
        """Write the buffered rows as one chunk (sorted by input index)."""
        if not self._rows:
            return
        rows = sorted(self._rows, key=lambda r: r.index)
        self._rows = []
        if rows[0].index <= self._last_index:
            raise FrameworkError(
                f"output {self.file!r}: event {rows[0].id} arrived after a later event was "
                "written; output must be in input order"
            )
        self._last_index = rows[-1].index
        data = self._chunk(rows)
        self._write_chunk(data)

    def _chunk(self, rows: list[OutputEvent]) -> dict[str, Any]:
        ids = np.array([tuple(r.id) for r in rows], dtype=np.uint64).reshape(-1, 3)
        data: dict[str, Any] = {
            name: ids[:, k].astype(dtype) for k, (name, dtype) in enumerate(_ID_TYPES.items())
        }
        columns: dict[str, list[Any]] = {}
        types: dict[str, str] = {}
        for row in rows:
            for branch, product in row.products.items():
                columns.setdefault(self.column_name(branch), []).append(product.value)
                types[self.column_name(branch)] = branch.type
        expected = self._columns if self._columns is not None else tuple(sorted(columns))
        for name in expected:
            values = columns.get(name, [])
            if len(values) != len(rows):
                raise FrameworkError(self._missing_message(name, rows))
            data[name] = to_column(values, types[name], f"{self.file}:{name}")
        extra = set(columns) - set(expected)
        if extra:
            raise FrameworkError(
                f"output {self.file!r}: columns {sorted(extra)} appear after the first chunk "
                "was written without them; every entry of a TTree holds every column"
            )
        self._columns = expected
        return data

    def _missing_message(self, name: str, rows: list[OutputEvent]) -> str:
        lacking = [
            str(r.id) for r in rows if not any(self.column_name(b) == name for b in r.products)
        ]
        return (
            f"output {self.file!r}: column {name!r} is missing in events {lacking[:5]}; "
            "every written event must hold every kept product"
        )

    def _write_chunk(self, data: dict[str, Any]) -> None:
        with self._file_lock:
            self._write_chunk_locked(data)

    def _write_chunk_locked(self, data: dict[str, Any]) -> None:
        if self._closed:
            raise FrameworkError(f"output {self.file!r}: the file is closed (end of the job)")
        if self._file is None:
            self._open()
        try:
            if self.tree not in self._file:
                types = {k: getattr(v, "type", None) or v.dtype for k, v in data.items()}
                self._file.mktree(self.tree, types)
            self._file[self.tree].extend(data)
        except Exception as exc:
            raise FrameworkError(
                f"output {self.file!r}: cannot write tree {self.tree!r}: {exc}"
            ) from exc

    def _open(self) -> None:
        uproot = optional_module("uproot", "hep")
        try:
            self._file = uproot.recreate(self.file)
        except OSError as exc:
            raise ConfigError(f"cannot create output file: {exc}", file=self.file) from exc

    def end_job(self) -> Awaitable[None] | None:
        """Flush what is left, make the tree if no event was written, close the file
        (off the loop, as ``write``'s chunks)."""
        return self._off_loop(self._finish)

    def _finish(self) -> None:
        try:
            self.flush()
            if self._file is None:
                self._open()
            if self.tree not in self._file:
                self._file.mktree(self.tree, self._empty_schema())
        finally:
            self.close()

    def close(self) -> None:
        """Close the file as it is (after a failed job: the chunks flushed before the
        failure); idempotent, and no later write reopens it."""
        with self._file_lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None

    def _empty_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = dict(_ID_TYPES)
        for token in self._tokens:
            for branch in token.branches:
                if self.output_commands.keeps(branch):
                    dtype = empty_column(branch.type)
                    if dtype is not None:
                        schema.setdefault(self.column_name(branch), dtype)
        return schema


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
