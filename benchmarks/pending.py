"""Parts whose layers have not landed yet: they report why and are recorded as skipped.

When the distributed layer (issue 6) provides a controller -> followers event
pipeline and the HLT-like demonstrator, replace these registrations by real
parts (same ``@register`` name, same ``PartResult`` contract).
"""

from __future__ import annotations

from .parts import Context, PartResult, register

__all__ = ["events", "hlt"]


@register("events")
def events(ctx: Context) -> PartResult:
    """Events/s through controller -> 1, 2, 4 followers (not implemented yet)."""
    return PartResult.skipped(
        "the controller -> follower event pipeline (actors.distributed, issue 6) "
        "has no benchmark entry point yet"
    )


@register("hlt")
def hlt(ctx: Context) -> PartResult:
    """HLT-like demonstrator with offloaded "GPU-like" modules (not implemented yet)."""
    return PartResult.skipped(
        "the HLT-like demonstrator needs the distributed layer (issue 6) and the "
        "framework's offload modules, which have not landed"
    )
