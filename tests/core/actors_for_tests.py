"""Small actors shared by the core tests."""

from __future__ import annotations

import asyncio
from typing import Any

from actors import Actor


class Echo(Actor):
    """Replies with the message; raises what it is given as ("raise", exc)."""

    async def receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message and message[0] == "raise":
            raise message[1]
        return message


class Counter(Actor):
    """Counts tells; ``"get"`` (ask) returns (count, instance id, start arg)."""

    instances: list[Counter] = []

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.count = start
        Counter.instances.append(self)

    async def receive(self, message: Any) -> Any:
        if message == "get":
            return self.count, id(self), self.start
        if message == "fail":
            raise ValueError("counter failed on purpose")
        self.count += 1
        return None


class Gate(Actor):
    """Blocks in receive until the event passed at spawn is set."""

    def __init__(self, gate: asyncio.Event, started: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.started = started
        self.seen: list[Any] = []

    async def receive(self, message: Any) -> Any:
        self.seen.append(message)
        if self.started is not None:
            self.started.set()
        await self.gate.wait()
        return message
