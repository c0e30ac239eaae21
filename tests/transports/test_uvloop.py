"""The two-sided conformance checks again, for tcp and shm, under uvloop.

The stream backends drive the event loop at a low level (reader/writer
callbacks, ``sock_*`` calls); this runs them on uvloop as well as on the default
asyncio loop used by the rest of the suite.
"""

from __future__ import annotations

import asyncio

import pytest

from actors.transports import connect, listen
from actors.transports import testing as conformance
from tests.transports.schemes import LISTEN_URLS, params, require

uvloop = pytest.importorskip("uvloop", reason="uvloop is a core dependency on Linux only")


@pytest.mark.parametrize("check", conformance.CHECKS, ids=[c[0] for c in conformance.CHECKS])
@pytest.mark.parametrize("scheme", params(("tcp", "shm")))
def test_two_sided_on_uvloop(scheme: str, check: conformance.Check) -> None:
    require(scheme)

    async def main() -> str:
        assert "uvloop" in type(asyncio.get_running_loop()).__module__
        url = LISTEN_URLS[scheme]()
        async with await listen(url, max_message_size=conformance.MAX_MESSAGE_SIZE) as lst:
            client = await connect(lst.address, max_message_size=conformance.MAX_MESSAGE_SIZE)
            server = await lst.accept()
            await conformance.run_check(check, server, client)
            return lst.address

    assert uvloop.run(main()).startswith(f"{scheme}://")
