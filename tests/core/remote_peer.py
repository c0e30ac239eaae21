"""A process serving actors for the remote tests: ``python remote_peer.py URL``.

Prints the bound address on stdout, then serves until killed. Actors:
``echo`` (replies with the message) and ``sleeper`` (never replies).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from actors import Actor, ActorSystem


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


class Sleeper(Actor):
    async def receive(self, message: Any) -> Any:
        await asyncio.Event().wait()


async def main(url: str) -> None:
    async with ActorSystem("peer") as system:
        system.spawn(Echo, name="echo")
        system.spawn(Sleeper, name="sleeper")
        print(await system.serve(url), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
