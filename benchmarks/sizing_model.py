"""The queueing model of the farm-sizing command (:mod:`benchmarks.sizing`).

A job is a closed queueing network solved by exact Mean Value Analysis (MVA,
Reiser & Lavenberg), multi-server stations by Seidmann's approximation:

* every event visits one **client** process (the one with the source; ``N``
  copies, ``S`` streams each: ``N * S`` events in flight in all) and, when
  offloaded, one **server** process (``M`` copies);
* a process (:class:`Stage`) spends per event ``gil_s`` seconds holding the
  GIL (Python module code and framework overhead: one event at a time per
  process), ``cpu_s`` seconds of native CPU that releases the GIL and
  ``wait_s`` seconds waiting without CPU (a sleep, a GPU kernel, I/O);
  ``parallelism`` is how many of its GIL-free modules one event runs at
  once (a DAG; 1 = one after the other);
* its ``threads`` bound the events it works on at once (``busy_s``: the
  seconds its modules keep a worker thread busy per event, when measured); the
  host's ``cores``
  bound the CPU of every process together (``gil_s + cpu_s``);
* a **crossing** (client -> server and back, per event) costs ``cpu_s`` of
  framework CPU under the GIL (half on each side) and ``delay_s`` of pure
  delay, plus the link's round trip, the wake-ups of ends that idled before it
  (``wake_s``), and per product the link's ``latency + bytes / bandwidth``.

:func:`predict` returns events/s and the mean event latency (Little's law:
``latency = events in flight / events/s``). Pure functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

__all__ = ["Crossing", "LinkCost", "Offload", "Prediction", "Stage", "Station", "mva", "predict"]


@dataclass(frozen=True)
class Station:
    """One station of the network: ``demand`` seconds per event over ``servers`` servers.

    ``kind``: ``"queue"`` (residence = service + waiting), ``"delay"`` (residence
    = demand, no waiting) or ``"wait"`` (only the waiting: the service is counted
    by another station, e.g. the cores behind the GIL). ``copies`` identical
    stations share the load (each gets ``demand / copies``).
    """

    name: str
    demand: float
    kind: str = "queue"
    servers: int = 1
    copies: int = 1


def _residence(st: Station, x: float, q: float, n: int) -> tuple[float, float]:
    """(residence time per event summed over the copies, new queue length per copy)
    with ``n`` customers; ``n <= servers`` never wait at a multi-server station."""
    d = st.demand / st.copies
    if st.kind == "delay" or (st.servers > 1 and n <= st.servers):
        return (0.0 if st.kind == "wait" else st.demand), 0.0
    rq = d / st.servers * (1.0 + q)  # Seidmann: the queueing part of c servers
    base = d * (st.servers - 1) / st.servers if st.kind == "queue" else -d / st.servers
    return st.copies * (rq + base), x * rq


def _capacity(stations: list[Station]) -> float:
    """The throughput no station can exceed (Seidmann may overshoot it slightly)."""
    caps = [
        st.copies * st.servers / st.demand
        for st in stations
        if st.kind != "delay" and st.demand > 0
    ]
    return min(caps, default=math.inf)


def mva(stations: list[Station], population: int) -> tuple[float, float]:
    """Exact MVA (approximate for multi-server stations) of a closed network.

    Returns ``(throughput per second, cycle time in seconds)`` for ``population``
    customers. Raises ValueError for a population below 1 or a network
    without time.
    """
    if population < 1:
        raise ValueError(f"population must be >= 1, not {population}")
    q = [0.0] * len(stations)
    x = 0.0
    for n in range(1, population + 1):
        res = [_residence(st, 0.0, q[i], n)[0] for i, st in enumerate(stations)]
        cycle = sum(res)
        if cycle <= 0.0:
            raise ValueError("the network has no time per event (every demand is 0)")
        x = min(n / cycle, _capacity(stations))
        q = [_residence(st, x, q[i], n)[1] for i, st in enumerate(stations)]
    return x, population / x


@dataclass(frozen=True)
class LinkCost:
    """A transport: one-way ``latency_s`` of a small message and ``bandwidth_Bps``;
    ``wake_s``: what a round trip costs more when both ends idled before it (each
    woke from sleep in the kernel; 0 where their event loops stay awake)."""

    latency_s: float
    bandwidth_Bps: float
    wake_s: float = 0.0

    def time(self, nbytes: int) -> float:
        """Seconds to move one message of ``nbytes`` one way."""
        return self.latency_s + nbytes / self.bandwidth_Bps


@dataclass(frozen=True)
class Crossing:
    """Per event, client <-> server: framework CPU, extra delay, products each way."""

    link: LinkCost
    cpu_s: float = 0.0
    delay_s: float = 0.0
    products_out: list[int] = field(default_factory=list)  # bytes, client -> server
    products_back: list[int] = field(default_factory=list)  # bytes, server -> client
    share: float = 1.0  # the fraction of events whose products cross (a filter before)

    def transfer_s(self) -> float:
        """Link time per event: the bare round trip, the wake-ups of idle ends
        (``link.wake_s``), plus every product (``share``)."""
        products = sum(self.link.time(b) for b in [*self.products_out, *self.products_back])
        return 2 * self.link.time(0) + self.link.wake_s + self.share * products


@dataclass(frozen=True)
class Stage:
    """One kind of process (see the module docstring for the fields)."""

    name: str
    gil_s: float
    cpu_s: float = 0.0
    wait_s: float = 0.0
    threads: int = 1
    parallelism: float = 1.0
    busy_s: float = 0.0  # worker-thread seconds per event (its modules' measured time)

    def plus_gil(self, seconds: float) -> Stage:
        return replace(self, gil_s=self.gil_s + seconds)


@dataclass(frozen=True)
class Prediction:
    """Events/s of the whole job, mean latency (s), and the busiest resource."""

    events_per_s: float
    latency_s: float
    bottleneck: str
    utilization: dict[str, float]


def _stations(stage: Stage, copies: int) -> list[Station]:
    work = (stage.cpu_s + stage.wait_s) / max(stage.parallelism, 1.0)
    # waiting for a worker thread: only behind GIL-free work - the GIL queue already
    # counts the waiting behind GIL-held work (and modules on the event loop hold none) -
    # or, when known, the seconds its modules keep the threads busy (bounds the rate)
    held = max(stage.cpu_s + stage.wait_s, stage.busy_s)
    return [
        Station(f"{stage.name} gil", stage.gil_s, "queue", 1, copies),
        Station(f"{stage.name} work", work, "delay"),
        Station(f"{stage.name} threads", held, "wait", stage.threads, copies),
    ]


@dataclass(frozen=True)
class Offload:
    """Server processes every event visits: ``copies`` of ``server`` share the events."""

    server: Stage
    crossing: Crossing
    copies: int = 1


def predict(
    client: Stage,
    *,
    clients: int = 1,
    streams: int = 1,
    offloads: tuple[Offload, ...] | list[Offload] = (),
    cores: float | None = None,
) -> Prediction:
    """Events/s and mean latency of ``clients`` copies of ``client`` with ``streams``
    each, every event also visiting each of ``offloads`` (N clients x M servers:
    one offload of M copies; a menu split over two remotes: two offloads).

    ``cores`` (default: no limit) bounds the CPU of every process on the host.
    Raises ValueError on a count below 1 or a job without time.
    """
    if min(clients, streams, *(o.copies for o in offloads)) < 1:
        raise ValueError("clients, streams and server copies must be >= 1")
    extra = sum(o.crossing.cpu_s / 2 for o in offloads)
    stations = _stations(client.plus_gil(extra), clients)
    cpu = client.gil_s + client.cpu_s + extra
    for i, o in enumerate(offloads):
        half = o.crossing.cpu_s / 2
        stations += _stations(
            replace(o.server.plus_gil(half), name=f"{o.server.name}{i}"), o.copies
        )
        stations.append(Station(f"link{i}", o.crossing.transfer_s() + o.crossing.delay_s, "delay"))
        cpu += o.server.gil_s + o.server.cpu_s + half
    if cores is not None:
        stations.append(Station("host cores", cpu, "wait", max(1, math.floor(cores))))
    x, cycle = mva(stations, clients * streams)
    util = {
        st.name: x * st.demand / (st.copies * st.servers)
        for st in stations
        if st.kind != "delay" and st.demand > 0
    }
    bottleneck = max(util, key=lambda k: util[k]) if util else "latency"
    if not util or util[bottleneck] < 0.8:
        bottleneck = "latency (streams)"
    return Prediction(x, cycle, bottleneck, util)
