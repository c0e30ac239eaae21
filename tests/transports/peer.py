"""A peer process for the kill tests: ``python peer.py URL MODE``.

Connects to URL, sends ``b"hello"``, then, by MODE:

- ``idle``: waits for messages forever (the test kills it while its own recv is pending);
- ``flood``: sends numbered 64 KiB messages as fast as the link takes them.

Killed with SIGKILL by the test; it never exits on its own while the link lives.
"""

from __future__ import annotations

import asyncio
import sys

import numpy as np

from actors.transports import connect


async def main(url: str, mode: str) -> None:
    link = await connect(url, timeout=30)
    await link.send(b"hello")
    if mode == "flood":
        payload = np.zeros(1 << 16, np.uint8)
        i = 0
        while True:
            await link.send(b"%d" % i, [payload])
            i += 1
    while True:
        await link.recv()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
