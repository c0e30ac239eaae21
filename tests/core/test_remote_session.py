"""Remote refs follow the link session's rules: a malformed frame aborts the link."""

from __future__ import annotations

import asyncio
import uuid

import msgpack
import pytest

from actors import ActorSystem, PeerLost
from actors.core import _wire
from actors.transports import listen


async def _answer_first_request_with(frame: bytes, url: str) -> None:
    async with await listen(url) as listener:
        link = await listener.accept()
        try:
            header, _ = await link.recv()
            _kind, target, corr, _body = _wire.unpack_header(header, "test")
            await link.send(frame or _wire.pack_header(_wire.TELL, target, corr, b""))
            await asyncio.sleep(30)  # the client must not wait for us
        finally:
            await link.close()


@pytest.mark.parametrize(
    "frame",
    [
        b"",  # an unexpected kind (TELL) from the server, well framed
        msgpack.packb([1, 2, 3]),  # a header of the wrong shape
    ],
)
async def test_malformed_frame_fails_pending_ask_at_once_naming_the_link(frame: bytes) -> None:
    url = f"inproc://remote-session-{uuid.uuid4().hex[:8]}"
    server = asyncio.ensure_future(_answer_first_request_with(frame, url))
    try:
        await asyncio.sleep(0.05)
        async with ActorSystem("client") as client:
            async with asyncio.timeout(10):
                with pytest.raises(PeerLost) as info:
                    await client.remote(url, "x")
    finally:
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
    text = str(info.value)
    assert url in text and "lost (actor 'x')" in text, text
    assert "malformed" in text or "unexpected frame kind" in text, text
