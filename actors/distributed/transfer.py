"""Sender, Receiver and EventDone: products across a channel.

::

    [modules.tosend]                       # in the process that has the products
    type = "actors.distributed:Sender"
    upstream = "offload"                   # label of the Controller / FollowerSource
    instance = 1
    products = ["muons", "float64_tracks_*_*"]   # module labels and/or selections

    [modules.muons]                        # in the other process
    type = "actors.distributed:Receiver"
    upstream = "source"
    instance = 1
    products = [{type = "numpy.ndarray", label = "muons"}, ...]

    [modules.offload_done]                 # on an end path, when paths may reject
    type = "actors.distributed:EventDone"
    upstream = "offload"

Per event the sender sends ONE message: its header is the metadata (product
count; per product branch, codec, codec meta, buffer sizes, host/device flags,
provenance; the filter decision), its buffers the products' memory regions
(arrays and SoA as raw regions; see :mod:`actors.codecs`). The receiver
checks the metadata against its ``products`` (number, type, label, instance,
order - a mismatch raises :class:`~actors.errors.SchemaMismatch` showing both
views), decodes without copying, moves device products to device memory if
they arrived in host memory (in a process without cupy they stay in host
memory, logged once per link naming the peer and the product, and only a
decode that needs cupy raises CodecError), and puts them under its own
label, keeping each product's instance name (``as`` renames). Provenance: a
received product's parents are its sender-side branch and that branch's
parents. References
(:class:`~actors.framework.Ref`, ``RefVector``) to transferred products are
rewritten to the receiver-side branches.

The Receiver is a filter: it returns False for an event rejected on the
sending side (negative count), so the rest of its path is skipped. A sender
on a path that rejected the event does not run; :class:`EventDone` (on an end
path, so it runs for every event) then sends the negative count for it, and
consumes and drops messages for receivers that did not run. Without
EventDone, every sender and receiver of the channel must run for every event.

All three are async (run on the loop) and SHARED (one instance, concurrent
events). The Sender puts a copy of the ChannelToken (instance "") so later
modules can depend on it. The Receiver's label holds exactly the received
products, so ``consumes("label")`` selects them and nothing else; with
``token = true`` it also puts the ChannelToken as instance "token" (then
select its products by instance).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..buffers import host_to_device, is_device, nbytes
from ..codecs import decode_parts, encode_parts, register_codec
from ..errors import BackendUnavailable, CodecError, ConfigError, SchemaMismatch
from ..framework import (
    Analyzer,
    Branch,
    Concurrency,
    Declarer,
    Event,
    Filter,
    Producer,
    Ref,
    RefVector,
)
from ..framework.event import Product
from .hub import ChannelToken, Hub, hub_for
from .protocol import DATA, PairSpec, pack

if TYPE_CHECKING:
    from ._peer import Peer

__all__ = ["EventDone", "Receiver", "Sender"]


def _check_instance(instance: Any) -> int:
    if not isinstance(instance, int) or isinstance(instance, bool) or instance < 0:
        raise ConfigError(f"instance must be an integer >= 0, not {instance!r}", key="instance")
    return instance


def _check_upstream(upstream: Any) -> str:
    if not isinstance(upstream, str) or not upstream:
        raise ConfigError("upstream must name the Controller or FollowerSource", key="upstream")
    return upstream


_NONE: frozenset[int] = frozenset()


def _track(hub: Hub, key: int, instance: int) -> None:
    if hub.has_event_done:
        hub.handled.setdefault(key, set()).add(instance)


# ---------------------------------------------------------------- references


class _RefCodec:
    """Ref -> ``[type, label, instance, process, index]`` (no buffers)."""

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        return [*obj.branch, obj.index], []

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        return Ref(Branch(*meta[:4]), int(meta[4]))


class _RefVectorCodec:
    """RefVector -> ``[type, label, instance, process, [index, ...]]`` (no buffers)."""

    def encode(self, obj: Any) -> tuple[Any, list[Any]]:
        return [*obj.branch, list(obj.indices)], []

    def decode(self, meta: Any, buffers: list[Any]) -> Any:
        return RefVector(Branch(*meta[:4]), tuple(int(i) for i in meta[4]))


register_codec(Ref, _RefCodec(), "actors.Ref")
register_codec(RefVector, _RefVectorCodec(), "actors.RefVector")


# ---------------------------------------------------------------- sender


def _product_meta(product: Product, buffers: list[Any]) -> list[Any]:
    b = product.branch
    name, meta, bufs = encode_parts(product.value)
    p = product.provenance
    buffers.extend(bufs)
    return [
        b.type,
        b.label,
        b.instance,
        b.process,
        name,
        meta,
        [nbytes(x) for x in bufs],
        [is_device(x) for x in bufs],
        [p.module_label, p.module_type, p.parameter_hash, p.process, [list(x) for x in p.parents]],
    ]


def encode_message(key: int, instance: int, products: Sequence[Product]) -> tuple[bytes, list[Any]]:
    """The DATA message of one event for one pair (raises CodecError naming the branch)."""
    buffers: list[Any] = []
    metas = []
    for product in products:
        try:
            metas.append(_product_meta(product, buffers))
        except Exception as exc:
            raise type(exc)(f"cannot send {product.branch}: {exc}") from exc
    return pack(DATA, key, instance, len(metas), True, metas), buffers


def rejected_message(key: int, instance: int) -> bytes:
    """The DATA message saying "rejected on the sending side" (negative count)."""
    return pack(DATA, key, instance, -1, False, [])


class Sender(Producer):
    """Sends selected products of each event to the paired Receiver (module doc)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(self, *, upstream: str, instance: int, products: Sequence[str]) -> None:
        super().__init__()
        self.upstream = _check_upstream(upstream)
        self.instance = _check_instance(instance)
        if isinstance(products, str) or not products:
            raise ConfigError(
                "products must be a non-empty list of labels/selections", key="products"
            )
        self.selections = list(products)

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.upstream)
        self.tokens = [d.consumes(s) for s in self.selections]
        hub_for(self.upstream).register(self.instance, "send", self.label, self.spec)
        d.produces("ChannelToken")

    def branches(self) -> list[Branch]:
        """Sent branches in order: per selection, the branches it matched (sorted)."""
        seen: dict[Branch, None] = {}
        for token in self.tokens:
            for b in sorted(token.branches):
                seen.setdefault(b, None)
        return list(seen)

    def spec(self) -> PairSpec:
        products = tuple((b.type, b.label, b.instance) for b in self.branches())
        return PairSpec(self.instance, "send", products, self.label)

    async def produce(self, event: Event) -> None:
        tok: ChannelToken = event.get(self.token)
        products = []
        for branch in self._order():
            try:
                products.append(event.get_product(branch))
            except KeyError:
                continue  # absent in this event: the receiver will report the count
        header, buffers = encode_message(tok.key, self.instance, products)
        await tok.hub.send_data(tok.key, header, buffers)
        _track(tok.hub, tok.key, self.instance)
        event.put(tok)

    def _order(self) -> list[Branch]:
        cached: list[Branch] | None = getattr(self, "_branches", None)
        if cached is None:
            cached = self._branches = self.branches()
        return cached


# ---------------------------------------------------------------- receiver


def _expected(raw: Any) -> tuple[str, str, str, str]:
    if not isinstance(raw, Mapping) or "type" not in raw or "label" not in raw:
        raise ConfigError(
            f"each expected product is a table {{type, label[, instance][, as]}}, not {raw!r}",
            key="products",
        )
    instance = str(raw.get("instance", ""))
    return str(raw["type"]), str(raw["label"]), instance, str(raw.get("as", instance))


class Receiver(Filter):
    """Receives the paired Sender's products into this event (module doc)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED

    def __init__(
        self, *, upstream: str, instance: int, products: Sequence[Any], token: bool = False
    ) -> None:
        super().__init__()
        self.upstream = _check_upstream(upstream)
        self.instance = _check_instance(instance)
        if isinstance(products, str) or not products:
            raise ConfigError("products must be a non-empty list of {type, label}", key="products")
        if not isinstance(token, bool):
            raise ConfigError(f"token must be true or false, not {token!r}", key="token")
        self.expected = [_expected(p) for p in products]
        self.put_token = token

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.upstream)
        self.outputs = [d.produces(t, out) for t, _, _, out in self.expected]
        if self.put_token:
            d.produces("ChannelToken", "token")
        hub_for(self.upstream).register(self.instance, "recv", self.label, self.spec)

    def spec(self) -> PairSpec:
        products = tuple((t, lab, inst) for t, lab, inst, _ in self.expected)
        return PairSpec(self.instance, "recv", products, self.label)

    async def filter(self, event: Event) -> bool:
        tok: ChannelToken = event.get(self.token)
        msg, buffers, source = await tok.hub.receive(tok.key, self.instance, (self.label, event.id))
        _track(tok.hub, tok.key, self.instance)
        if self.put_token:
            event.put(tok, "token")
        count, metas = int(msg[3]), msg[5]
        if count < 0:
            return False
        self._check(event, metas)
        self._put_all(event, metas, buffers, source)
        return True

    def _check(self, event: Event, metas: list[Any]) -> None:
        got = [(m[0], m[1], m[2]) for m in metas]
        want = [(t, lab, inst) for t, lab, inst, _ in self.expected]
        if len(got) != len(want) or any(g != w for g, w in zip(got, want, strict=False)):
            raise SchemaMismatch(
                f"receiver {self.label!r} (instance {self.instance}), event {event.id}: "
                f"the sender sent {len(got)} product(s) {_names(got)}, this receiver expects "
                f"{len(want)} {_names(want)} (number, type, label and order must match)"
            )

    def _put_all(self, event: Event, metas: list[Any], buffers: list[Any], source: Peer) -> None:
        mapping = {Branch(*m[:4]): out for m, out in zip(metas, self.outputs, strict=True)}
        pos = 0
        for meta, out in zip(metas, self.outputs, strict=True):
            sizes, device = meta[6], meta[7]
            bufs = list(buffers[pos : pos + len(sizes)])
            pos += len(sizes)
            remote = Branch(*meta[:4])
            if any(device):
                bufs = _on_device(bufs, device, source, remote)
            try:
                decoded = decode_parts(meta[4], meta[5], bufs)
            except CodecError as exc:
                raise CodecError(
                    f"receiver {self.label!r}: cannot decode {remote} from {source.who}: {exc}"
                ) from exc
            _put_with_parents(event, _remap(decoded, mapping), out, remote, meta[8])


def _on_device(bufs: list[Any], device: list[Any], source: Peer, product: Branch) -> list[Any]:
    """The buffers of ``product`` with those the peer flagged as device memory
    moved there - unless this process has no cupy: they then stay in host
    memory, as every transport delivers them (logged once per link, naming the
    peer and the product); only decoding a cupy array from them raises
    CodecError, anything else decodes from host memory as usual."""
    out = []
    for buf, dev in zip(bufs, device, strict=True):
        if dev and source.device_ok and not is_device(buf):
            try:
                buf = host_to_device(buf)
            except BackendUnavailable as exc:  # a peer's flag, not this process's misuse
                source.no_device(str(product), exc)
        out.append(buf)
    return out


def _names(items: list[tuple[str, str, str]]) -> str:
    return "[" + ", ".join("_".join(i) for i in items) + "]"


def _remap(value: Any, mapping: dict[Branch, Branch]) -> Any:
    """Rewrite references to sender-side branches into the receiver-side ones."""
    if isinstance(value, Ref):
        return Ref(mapping.get(value.branch, value.branch), value.index)
    if isinstance(value, RefVector):
        return RefVector(mapping.get(value.branch, value.branch), value.indices)
    if isinstance(value, list) and value and isinstance(value[0], Ref | RefVector):
        return [_remap(v, mapping) for v in value]
    return value


def _put_with_parents(
    event: Event, value: Any, out: Branch, remote: Branch, prov: list[Any]
) -> None:
    """Put ``value`` as ``out`` with the sender-side branch and its parents as parents."""
    event.put(value, out.instance, parents=(remote, *(Branch(*p) for p in prov[4])))


# ---------------------------------------------------------------- event done


class EventDone(Analyzer):
    """End-path module: closes the channel's bookkeeping of each event (module doc)."""

    concurrency: ClassVar[Concurrency] = Concurrency.SHARED
    #: ``analyze`` completes at once on the loop when every pair already ran for the
    #: event; it waits (its awaitable slow path) only to send or drop messages
    run_on_loop: ClassVar[bool] = True

    def __init__(self, *, upstream: str) -> None:
        super().__init__()
        self.upstream = _check_upstream(upstream)

    def declare(self, d: Declarer) -> None:
        self.token = d.consumes(self.upstream)
        hub_for(self.upstream).has_event_done = True

    def analyze(self, event: Event) -> Awaitable[None] | None:
        tok: ChannelToken = event.get(self.token)
        hub = tok.hub
        seen = hub.handled.pop(tok.key, _NONE)
        missing = [(i, spec.role) for i, spec in hub.schema_cache().items() if i not in seen]
        if missing:
            return self._close_missing(hub, tok.key, missing)
        hub.event_done(tok.key)
        return None

    async def _close_missing(self, hub: Hub, key: int, missing: list[tuple[int, str]]) -> None:
        """Send the rejected message of senders, drop the message of receivers, that did not run."""
        for instance, role in missing:
            if role == "send":
                await hub.send_data(key, rejected_message(key, instance), [])
        for instance, role in missing:
            if role == "recv":
                await hub.receive(key, instance)
        hub.event_done(key)
