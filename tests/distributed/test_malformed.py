"""A well-framed but malformed protocol message fails the job at once, naming the link.

The other side is played by the test on the raw link (handshake, then one bad
message); before the session rules the reader died silently and the job
waited for its timeouts.
"""

from __future__ import annotations

import asyncio

from actors.distributed import use_links
from actors.distributed._handshake import answer_controller, greet_follower
from actors.distributed.hub import close_channels
from actors.distributed.protocol import CREDIT, DATA, pack
from actors.framework import run_process
from actors.transports import connect, listen

from .helpers import inproc_tables
from .test_inproc import local_process, remote_process


async def test_malformed_message_to_follower_fails_it_naming_the_link() -> None:
    tables = inproc_tables({"offload": ("remote", "local")}, ["local", "remote"])

    async def follower() -> BaseException | None:
        with use_links(tables["remote"]):
            try:
                await run_process(remote_process())
            except Exception as exc:
                return exc
            finally:
                await close_channels()
        return None

    job = asyncio.ensure_future(follower())
    url = tables["local"].get("offload", "client").url
    async with asyncio.timeout(20):
        while True:  # the follower listens once its job started
            try:
                link = await connect(url, timeout=1)
                break
            except ConnectionError:
                await asyncio.sleep(0.05)
        try:
            await greet_follower(link, "offload", {}, "FAKE", 10)
            await link.send(pack(DATA))  # a DATA message without its fields
            error = await job
        finally:
            await link.close()
    assert error is not None
    text = str(error.__cause__ or error)
    assert "link 'offload'" in text and "FAKE" in text, text
    assert "malformed DATA message" in text, text  # refused by protocol.unpack


async def test_malformed_credit_to_controller_fails_it_naming_the_follower() -> None:
    tables = inproc_tables({"offload": ("remote", "local")}, ["local", "remote"])
    url = tables["remote"].get("offload", "server").url
    async with await listen(url) as listener:

        async def fake_follower() -> None:
            link = await listener.accept()
            try:
                await answer_controller(link, "offload", {}, "FAKE", 64, 10)
                await link.send(pack(CREDIT, "many"))  # not a number
                await asyncio.sleep(30)
            finally:
                await link.close()

        fake = asyncio.ensure_future(fake_follower())
        try:
            with use_links(tables["local"]):
                async with asyncio.timeout(20):
                    try:
                        await run_process(local_process(layout=[[1, [3000]]]))
                    except Exception as exc:
                        error: BaseException | None = exc
                    else:
                        error = None
                    finally:
                        await close_channels()
        finally:
            fake.cancel()
            await asyncio.gather(fake, return_exceptions=True)
    assert error is not None
    text = str(error.__cause__ or error)
    assert "lost the follower on link 'offload'" in text and "FAKE" in text, text
    assert "malformed CREDIT message" in text, text  # refused by protocol.unpack
