"""PNG plots of the transports and events parts (matplotlib, imported lazily: extra ``plots``).

Transports: two log-log figures, median round-trip latency vs message size and
bandwidth vs message size, one line per series (ours solid, raw baselines
dashed). Events: events/s vs streams, one line per transport.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["plot_events", "plot_transports"]

#: Series that pass buffers by reference: their "bandwidth" is no transfer rate.
_BY_REFERENCE = {"inproc://"}


def plot_transports(records: list[dict[str, Any]], out: Path, device: str) -> list[Path]:
    """Write ``latency.png`` and ``bandwidth.png`` into ``out``; returns the paths.

    Raises ImportError when matplotlib is missing (the caller reports it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        series[rec["series"]].append(rec)
    written = []
    for key, label, fname in (
        ("latency_us", "median round trip [us]", "latency.png"),
        ("bandwidth_GBps", "bandwidth [GB/s]", "bandwidth.png"),
    ):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
        for name, recs in series.items():
            if key == "bandwidth_GBps" and name in _BY_REFERENCE:
                continue
            recs = sorted((r for r in recs if r.get(key)), key=lambda r: r["size"])
            if not recs:
                continue
            style = "-" if recs[0]["role"] == "transport" else "--"
            ax.plot(
                [r["size"] for r in recs],
                [r[key] for r in recs],
                style,
                marker="o",
                markersize=3,
                label=name,
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("message size [bytes]")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs size ({device} memory; dashed = raw baselines)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        path = out / fname
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def plot_events(series: list[dict[str, Any]], out: Path) -> list[Path]:
    """Write ``events.png``: events/s vs streams, one line per transport, one panel per
    (scenario, followers) that was measured at more than one stream count.

    Raises ImportError when matplotlib is missing (the caller reports it).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[tuple[str, int], dict[str, list[tuple[int, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for e in series:
        if e.get("status") == "ok":
            panels[(e["scenario"], e["followers"])][e["transport"]].append(
                (e["streams"], e["events_per_s"])
            )
    keys = [k for k, lines in panels.items() if any(len(points) > 1 for points in lines.values())]
    if not keys:
        return []
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for transport, points in sorted(panels[key].items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=transport)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("streams per process")
        ax.set_ylabel("events/s")
        ax.set_title(f"{key[0]}, {key[1]} follower{'s' if key[1] > 1 else ''}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("controller -> followers: events/s vs streams")
    fig.tight_layout()
    path = out / "events.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]
