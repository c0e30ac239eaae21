"""The filter-farm projection of the sizing command: nodes and link bandwidth for the CMS HLT.

The design documents' farm: ``rate`` events/s in (100 kHz L1 accept), ``event_mb``
per event (~1 MB), ``cpu_s`` of CPU per event on one core (~260 ms), a node of
``cores`` cores (2 x 64) and, offloaded, ``gpus`` GPUs per node (in-node) or
GPU servers of ``gpus_per_server`` GPUs reached over the network (remote). A
``fraction`` of the CPU time (~40%, as in CMS Run 3) moves to the GPU, where
it runs ``speedup`` times faster (one event at a time per GPU); the CPU keeps
``(1 - fraction) * cpu_s`` plus ``offload_cpu_s`` per event for preparing the
transfers. Every node is one closed network of the sizing model (events in
flight: enough to keep the cores busy
while events wait for the GPU; C++ modules: no GIL), solved by MVA:
its events/s gives the nodes needed, ``ceil(rate / node events/s)``.

Link bandwidth per node: the event data in (``event_mb``), the accepted
events out (``accept_rate``), and, for remote GPUs, the offloaded products
both ways (``gpu_in_mb`` to the GPU, ``gpu_out_mb`` back).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .sizing_model import Crossing, LinkCost, Offload, Stage, predict

__all__ = ["SPEEDUPS", "Farm", "describe", "plot_farm", "project"]

SPEEDUPS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
_PCIE = LinkCost(latency_s=10e-6, bandwidth_Bps=25e9)  # PCIe 4 x16, one way
_NET = LinkCost(latency_s=30e-6, bandwidth_Bps=100e9 / 8)  # 100 Gb/s Ethernet


@dataclass(frozen=True)
class Farm:
    """The stated farm (see the module docstring); every field can be overridden."""

    rate: float = 100e3
    event_mb: float = 1.0
    cpu_s: float = 0.260
    cores: int = 128
    fraction: float = 0.40
    offload_cpu_s: float = 0.002
    gpus: int = 2
    gpus_per_server: int = 4
    gpu_in_mb: float = 0.5
    gpu_out_mb: float = 0.2
    accept_rate: float = 5e3

    def streams(self, cpu_s: float, other_s: float) -> int:
        """Events in flight per node: enough to keep every core busy while
        ``other_s`` (GPU, transfers) of an event's ``cpu_s + other_s`` runs elsewhere."""
        return max(1, math.ceil(self.cores * (cpu_s + other_s) / cpu_s))


def _node_rate(farm: Farm, speedup: float | None, link: LinkCost, gpus: int) -> tuple[float, float]:
    """(events/s, mean latency s) of one CPU node; ``speedup`` None = no offload."""
    if speedup is None:
        client = Stage("cpu", 0.0, cpu_s=farm.cpu_s, threads=farm.cores)
        p = predict(client, streams=farm.streams(farm.cpu_s, 0.0), cores=farm.cores)
        return p.events_per_s, p.latency_s
    cpu = farm.cpu_s * (1 - farm.fraction) + farm.offload_cpu_s
    gpu = Stage("gpu", 0.0, wait_s=farm.cpu_s * farm.fraction / speedup, threads=1)
    mb = 1e6
    crossing = Crossing(
        link, products_out=[int(farm.gpu_in_mb * mb)], products_back=[int(farm.gpu_out_mb * mb)]
    )
    streams = farm.streams(cpu, gpu.wait_s + crossing.transfer_s())
    client = Stage("cpu", 0.0, cpu_s=cpu, threads=streams)
    p = predict(client, streams=streams, offloads=[Offload(gpu, crossing, gpus)], cores=farm.cores)
    return p.events_per_s, p.latency_s


def _gbps(bytes_per_s: float) -> float:
    return bytes_per_s * 8 / 1e9


def project(farm: Farm, speedups: list[float] = SPEEDUPS) -> list[dict[str, Any]]:
    """One row per scenario: CPU only, then in-node and remote GPUs at every speed-up.

    Row: scenario, speedup, node_events_per_s, latency_ms, cpu_nodes, gpu_servers
    (remote only), gpus_total, cpu_node_gbps, gpu_server_gbps.
    """
    rows = []
    data_in = farm.rate * farm.event_mb * 1e6 + farm.accept_rate * farm.event_mb * 1e6
    x, lat = _node_rate(farm, None, _PCIE, 0)
    nodes = math.ceil(farm.rate / x)
    rows.append(
        {
            "scenario": "CPU only",
            "speedup": None,
            "node_events_per_s": x,
            "latency_ms": lat * 1e3,
            "cpu_nodes": nodes,
            "gpu_servers": 0,
            "gpus_total": 0,
            "cpu_node_gbps": _gbps(data_in / nodes),
            "gpu_server_gbps": 0.0,
        }
    )
    gpu_bytes = (farm.gpu_in_mb + farm.gpu_out_mb) * 1e6
    for s in speedups:
        x, lat = _node_rate(farm, s, _PCIE, farm.gpus)
        nodes = math.ceil(farm.rate / x)
        rows.append(
            {
                "scenario": f"{farm.gpus} GPUs in each node",
                "speedup": s,
                "node_events_per_s": x,
                "latency_ms": lat * 1e3,
                "cpu_nodes": nodes,
                "gpu_servers": 0,
                "gpus_total": nodes * farm.gpus,
                "cpu_node_gbps": _gbps(data_in / nodes),
                "gpu_server_gbps": 0.0,
            }
        )
    cpu_bound = farm.cores / (farm.cpu_s * (1 - farm.fraction) + farm.offload_cpu_s)
    for s in speedups:
        # a CPU node shares the GPU servers (N clients x M servers): it gets as many GPUs
        # as keep them <= 80% busy at its CPU-bound rate; the link is the network
        gpu_s = farm.cpu_s * farm.fraction / s
        x, lat = _node_rate(farm, s, _NET, max(1, math.ceil(cpu_bound * gpu_s / 0.8)))
        nodes = math.ceil(farm.rate / x)
        servers = max(1, math.ceil(farm.rate * gpu_s / (0.8 * farm.gpus_per_server)))
        rows.append(
            {
                "scenario": f"remote GPU servers ({farm.gpus_per_server} GPUs)",
                "speedup": s,
                "node_events_per_s": x,
                "latency_ms": lat * 1e3,
                "cpu_nodes": nodes,
                "gpu_servers": servers,
                "gpus_total": servers * farm.gpus_per_server,
                "cpu_node_gbps": _gbps((data_in + farm.rate * gpu_bytes) / nodes),
                "gpu_server_gbps": _gbps(farm.rate * gpu_bytes / servers),
            }
        )
    return rows


def describe(farm: Farm) -> dict[str, Any]:
    """The stated assumptions (for results and docs)."""
    return asdict(farm) | {"pcie": asdict(_PCIE), "network": asdict(_NET)}


def plot_farm(rows: list[dict[str, Any]], out: Path, farm: Farm) -> Path:
    """Write ``sizing-farm.png`` (nodes and link bandwidth vs GPU speed-up) into ``out``.

    Raises ImportError when matplotlib is missing (extra ``plots``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cpu_only = rows[0]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    for scenario in dict.fromkeys(r["scenario"] for r in rows[1:]):
        rs = [r for r in rows if r["scenario"] == scenario]
        s = [r["speedup"] for r in rs]
        a.plot(s, [r["cpu_nodes"] for r in rs], marker="o", label=f"CPU nodes, {scenario}")
        if any(r["gpu_servers"] for r in rs):
            a.plot(
                s,
                [r["gpu_servers"] for r in rs],
                "--",
                marker="s",
                label=f"GPU servers, {scenario}",
            )
            b.plot(
                s,
                [r["gpu_server_gbps"] for r in rs],
                "--",
                marker="s",
                label=f"per GPU server, {scenario}",
            )
        b.plot(s, [r["cpu_node_gbps"] for r in rs], marker="o", label=f"per CPU node, {scenario}")
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_xlabel("GPU speed-up of the offloaded fraction")
        ax.grid(True, which="both", alpha=0.3)
    a.axhline(
        cpu_only["cpu_nodes"], color="k", ls=":", label=f"CPU only ({cpu_only['cpu_nodes']} nodes)"
    )
    b.axhline(cpu_only["cpu_node_gbps"], color="k", ls=":", label="CPU only")
    a.set_ylabel(f"nodes needed for {farm.rate / 1e3:g} kHz")
    b.set_ylabel("link bandwidth per node [Gb/s]")
    a.set_yscale("log")
    b.set_yscale("log")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.suptitle(
        f"HLT farm projection (sizing model): {farm.rate / 1e3:g} kHz x "
        f"{farm.event_mb:g} MB, {farm.cpu_s * 1e3:g} ms CPU/event, {farm.cores} cores "
        f"and {farm.gpus} GPUs per node, {farm.fraction:.0%} offloadable",
        fontsize=10,
    )
    fig.tight_layout()
    path = out / "sizing-farm.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
