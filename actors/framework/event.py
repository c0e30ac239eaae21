"""Event data model: IDs, products with provenance, references, and the Event.

A module never builds an :class:`Event`; the scheduler hands it one per call.
The Event a module sees is a light view of the event's product store bound to
that module: ``put`` knows the module's label and declared products, ``get``
records nothing and copies nothing.

Threading: an Event may be used from the worker thread running the module's
sync code or from the loop (async modules); products are only added, never
replaced, so concurrent ``get`` from other modules of the same event is safe.
A product, once put, is immutable for consumers: numpy arrays are made
read-only; other values must not be mutated after ``put`` (by convention).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import FrameworkError, ProductNotFound
from .branch import Branch, Selection
from .runlumi import Lumi, LumiContext, Run

if TYPE_CHECKING:
    from .module import Token

__all__ = [
    "Event",
    "EventID",
    "Lumi",
    "LumiID",
    "ProcessEntry",
    "Product",
    "Provenance",
    "Ref",
    "RefVector",
    "Run",
]


class EventID(NamedTuple):
    """``(run, lumi, event)``; ``str()`` is ``run:lumi:event``."""

    run: int
    lumi: int
    event: int

    def __str__(self) -> str:
        return f"{self.run}:{self.lumi}:{self.event}"


class LumiID(NamedTuple):
    """``(run, lumi)``; ``str()`` is ``run:lumi``."""

    run: int
    lumi: int

    def __str__(self) -> str:
        return f"{self.run}:{self.lumi}"


class ProcessEntry(NamedTuple):
    """One step of a run's process history: process name and configuration hash."""

    name: str
    config_hash: str


@dataclass(frozen=True, slots=True)
class Provenance:
    """Who made a product: module label/type, parameter hash, process, parents.

    ``parents`` are the branches the producing module declared it consumes and
    that were present in the event when it put the product.
    """

    module_label: str
    module_type: str
    parameter_hash: str
    process: str
    parents: tuple[Branch, ...] = ()


@dataclass(frozen=True, slots=True)
class Product:
    """A value in an event with its branch and provenance."""

    branch: Branch
    value: Any
    provenance: Provenance


@dataclass(frozen=True, slots=True)
class Ref:
    """Reference to element ``index`` of the product in ``branch`` (like ``edm::Ref``).

    Resolved through the event holding that product: ``event.resolve(ref)``.
    """

    branch: Branch
    index: int


@dataclass(frozen=True, slots=True)
class RefVector:
    """References to several elements of one product; resolves to a list."""

    branch: Branch
    indices: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Ref]:
        return (Ref(self.branch, i) for i in self.indices)


# ---------------------------------------------------------------- event


class EventData:
    """The product store of one event (framework side, shared by its views)."""

    __slots__ = ("id", "index", "lumi", "products")

    def __init__(self, event_id: EventID, index: int, lumi: LumiContext) -> None:
        self.id = event_id
        self.index = index  # position in input order, from 0
        self.lumi = lumi
        self.products: dict[Branch, Product] = {}


@dataclass(slots=True)
class ModuleInfo:
    """What an Event view needs to know about the module it is handed to."""

    label: str
    module_type: str
    parameter_hash: str
    process: str
    produces: dict[str, Branch] = field(default_factory=dict)  # instance -> branch
    consumes: tuple[Branch, ...] = ()
    slot: int = 0  # identifies the module instance for run/lumi state
    _provenance: dict[tuple[Branch, ...], Provenance] = field(default_factory=dict)

    def provenance(self, parents: tuple[Branch, ...]) -> Provenance:
        """The (cached) provenance of a product this module puts with ``parents``."""
        cached = self._provenance.get(parents)
        if cached is None:
            cached = Provenance(
                self.label, self.module_type, self.parameter_hash, self.process, parents
            )
            if len(self._provenance) < 64:
                self._provenance[parents] = cached
        return cached


#: Types with nothing to freeze: ``freeze_value`` returns their values at once, without a
#: lookup. The builtins, and each type it meets whose class has no ``flags`` and no
#: ``__getattr__`` or is one of awkward's high-level arrays or records (learnt as values
#: go by, up to :data:`_PLAIN_TYPES_MAX` types).
PLAIN_TYPES: set[type] = {int, float, bool, complex, str, bytes, type(None), tuple, list, dict}
_PLAIN_TYPES_MAX = 256


def freeze_value(value: Any) -> Any:
    """Make ``value`` read-only where its type allows (numpy arrays); return it."""
    cls = type(value)
    if cls in PLAIN_TYPES:
        return value
    highlevel = _awkward_highlevel(cls)
    flags = None if highlevel else getattr(value, "flags", None)
    if flags is None:
        if len(PLAIN_TYPES) < _PLAIN_TYPES_MAX and (
            highlevel or not (hasattr(cls, "flags") or hasattr(cls, "__getattr__"))
        ):
            PLAIN_TYPES.add(cls)  # (one set operation: safe from any thread)
        return value
    if hasattr(flags, "writeable"):
        with contextlib.suppress(ValueError):  # a view of a read-only base stays as is
            flags.writeable = False
    return value


#: class -> whether it is one of awkward's high-level classes (numpy arrays ask per value)
_AWKWARD_HIGHLEVEL: dict[type, bool] = {}


def _awkward_highlevel(cls: type) -> bool:
    """An ``ak.Array`` or ``ak.Record`` (or a behavior's subclass): immutable, nothing to
    freeze; their ``__getattr__`` looks up fields (a failed ``flags`` lookup: ~3 µs).
    Cached per class (up to :data:`_PLAIN_TYPES_MAX` classes)."""
    known = _AWKWARD_HIGHLEVEL.get(cls)
    if known is None:
        known = any(
            c.__module__ == "awkward.highlevel" and c.__name__ in ("Array", "Record")
            for c in cls.__mro__
        )
        if len(_AWKWARD_HIGHLEVEL) < _PLAIN_TYPES_MAX:
            _AWKWARD_HIGHLEVEL[cls] = known  # (one dict operation: safe from any thread)
    return known


class Event:
    """A module's view of one event.

    ``get`` accepts a :class:`~actors.framework.module.Token` from
    ``declare`` (fast), or a string: a module label or a branch selection with
    wildcards. It raises :class:`~actors.errors.ProductNotFound` when nothing
    matches and :class:`~actors.errors.FrameworkError` when several products
    match (use :meth:`get_many`). ``put`` stores a product under the branch the
    module declared for ``instance``.
    """

    __slots__ = ("_data", "_module")

    def __init__(self, data: EventData, module: ModuleInfo) -> None:
        self._data = data
        self._module = module

    @property
    def id(self) -> EventID:
        return self._data.id

    @property
    def lumi(self) -> Lumi:
        """This module's view of the event's luminosity block (per-lumi state)."""
        return Lumi(self._data.lumi, self._module.slot)

    @property
    def run(self) -> Run:
        """This module's view of the event's run (per-run state)."""
        return Run(self._data.lumi.run, self._module.slot)

    # -- reading
    def get_product(self, what: Token | str | Branch) -> Product:
        """The single product selected by ``what``, with branch and provenance."""
        found = self._find(what)
        if len(found) == 1:
            return found[0]
        if not found:
            raise ProductNotFound(
                f"event {self.id}: no product matches {_describe(what)} "
                f"(asked by module {self._module.label!r})"
            )
        names = ", ".join(str(p.branch) for p in found)
        raise FrameworkError(
            f"event {self.id}: {_describe(what)} matches several products ({names}); "
            f"module {self._module.label!r} should use get_many or a narrower selection"
        )

    def get(self, what: Token | str | Branch) -> Any:
        """The value of the single product selected by ``what``."""
        return self.get_product(what).value

    def get_many(self, what: Token | str | Branch) -> dict[Branch, Any]:
        """All present products selected by ``what``, as ``{branch: value}``."""
        return {p.branch: p.value for p in self._find(what)}

    def get_products(self, what: Token | str | Branch) -> list[Product]:
        """All present products selected by ``what``, with branches and provenance."""
        return self._find(what)

    def get_branch(self, branch: Branch | str) -> Any:
        """The value stored under exactly ``branch`` (no wildcards)."""
        key = Branch.parse(branch) if isinstance(branch, str) else branch
        product = self._data.products.get(key)
        if product is None:
            raise ProductNotFound(f"event {self.id}: no product {key}")
        return product.value

    def branches(self) -> list[Branch]:
        """Branches of all products present now."""
        return list(self._data.products)

    def resolve(self, ref: Ref | RefVector) -> Any:
        """Element(s) of another product in this event that ``ref`` points to."""
        value = self.get_branch(ref.branch)
        try:
            if isinstance(ref, RefVector):
                return [value[i] for i in ref.indices]
            return value[ref.index]
        except (IndexError, KeyError, TypeError) as exc:
            raise FrameworkError(
                f"event {self.id}: cannot resolve {ref} in product {ref.branch}: {exc}"
            ) from exc

    def ref(self, what: Token | str | Branch, index: int) -> Ref:
        """A :class:`Ref` to element ``index`` of the product selected by ``what``."""
        return Ref(self.get_product(what).branch, index)

    # -- writing
    def put(
        self,
        value: Any,
        instance: str = "",
        *,
        provenance: Provenance | None = None,
        parents: tuple[Branch, ...] | None = None,
    ) -> Branch:
        """Store ``value`` as this module's product ``instance``; returns its branch.

        ``provenance`` replaces the one the framework would record (this
        module, its consumed parents): a receiver passes the provenance the
        product had in the process that made it. ``parents`` keeps this
        module's provenance but replaces its parents (a receiver names the
        sender-side branch and its parents); giving both is a FrameworkError.
        Raises FrameworkError if the module did not declare ``instance`` or
        already put it for this event. numpy arrays are made read-only.
        """
        module = self._module
        branch = module.produces.get(instance)
        if branch is None:
            raise FrameworkError(
                f"module {module.label!r} puts instance {instance!r} that it did not declare "
                f"(declared: {sorted(module.produces)})"
            )
        products = self._data.products
        if branch in products:
            raise FrameworkError(f"event {self.id}: module {module.label!r} put {branch} twice")
        if parents is not None:
            if provenance is not None:
                raise FrameworkError(
                    f"module {module.label!r}: put() takes provenance or parents, not both"
                )
            provenance = module.provenance(parents)
        elif provenance is None:
            consumed = module.consumes
            provenance = module.provenance(
                tuple(b for b in consumed if b in products) if consumed else ()
            )
        if type(value) not in PLAIN_TYPES:
            value = freeze_value(value)
        products[branch] = Product(branch, value, provenance)
        return branch

    # -- internals
    def _find(self, what: Token | str | Branch) -> list[Product]:
        products = self._data.products
        if isinstance(what, Branch):
            product = products.get(what)
            return [] if product is None else [product]
        if isinstance(what, str):
            selection = Selection(what)
            return [p for b, p in products.items() if selection.matches(b)]
        return [products[b] for b in what.branches if b in products]

    def __repr__(self) -> str:
        return f"Event({self.id}, module={self._module.label!r})"


class OutputEvent:
    """What an output module's ``write`` sees: the event's selected products.

    ``products`` maps each kept branch present in the event to its
    :class:`Product`; ``id`` and ``index`` (input order) identify the event and
    ``accepted_paths`` names the trigger paths that accepted it.
    """

    __slots__ = ("accepted_paths", "id", "index", "products")

    def __init__(
        self,
        event_id: EventID,
        index: int,
        products: Mapping[Branch, Product],
        accepted_paths: tuple[str, ...],
    ) -> None:
        self.id = event_id
        self.index = index
        self.products = dict(products)
        self.accepted_paths = accepted_paths

    def values(self) -> dict[Branch, Any]:
        """``{branch: value}`` of the selected products."""
        return {b: p.value for b, p in self.products.items()}

    def __repr__(self) -> str:
        return f"OutputEvent({self.id}, {len(self.products)} products)"


def _describe(what: object) -> str:
    if isinstance(what, str):
        return f"selection {what!r}"
    if isinstance(what, Branch):
        return f"branch {what}"
    return repr(what)
