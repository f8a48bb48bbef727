"""The Python client's session socket (``agentlane_client.SessionSocket``): commands over the
socket, resume after a server-side cut, 4001 surfaced as ConnectionLost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import jwt
import pytest
from agentlane_client import ConnectionLost, Event, SessionSocket

from agentlane.auth import Authenticator
from gateway.protocol import CLOSE_SLOW_CONSUMER
from tests.gateway.harness import GatewayThread, gateway_thread


async def _cut(gw: GatewayThread) -> None:
    for connection in tuple(gw.gateway.connections):
        connection.close(CLOSE_SLOW_CONSUMER, "cut by the test")


async def until(predicate: Callable[[], bool], timeout_s: float = 20) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - plain attributes of the client, no event
            await asyncio.sleep(0.02)


async def test_ask_approve_cancel_and_resume_after_a_cut(database_url: str) -> None:
    with gateway_thread(database_url) as gw:
        seen: list[Event] = []
        async with SessionSocket(gw.http_url, "chat") as client:

            async def follow(count: int) -> None:
                async for event in client.events():
                    seen.append(event)
                    if len(seen) == count:
                        return

            following = asyncio.create_task(follow(4))
            await client.ask("run-1", "hello")
            await until(lambda: bool(seen))
            execution = seen[0].execution_id
            assert seen[0].type == "RunAccepted" and execution is not None
            asyncio.run_coroutine_threadsafe(_cut(gw), gw.loop).result(5)
            # Commands travel at most once on a socket (a frame sent into a closing one is lost;
            # `ask` is safe to repeat by runId): send once the client is back.
            await until(lambda: client.connections >= 2 and client.ready.is_set())
            await client.approve(execution, "ok", {"approved": True})
            await asyncio.to_thread(gw.append, "default", "chat", ["between"])
            await client.cancel(execution)
            await asyncio.wait_for(following, 20)
        # The signal and the token race each other; each arrives once, in seq order.
        assert sorted(e.type for e in seen) == [
            "CancelRequested", "RunAccepted", "SignalReceived", "Token",
        ]
        assert [e.seq for e in seen] == [1, 2, 3, 4]
        assert CLOSE_SLOW_CONSUMER in client.close_codes and client.connections >= 2


async def test_unauthorized_raises(database_url: str) -> None:
    secret = "s3cret-for-tests-only-0123456789abcdef"
    with gateway_thread(database_url, authenticator=Authenticator(mode="jwt", secret=secret)) as gw:
        expired = jwt.encode({"tenant": "a", "exp": int(time.time()) - 3600}, secret, "HS256")
        client = SessionSocket(gw.http_url, "s", token=expired)
        with pytest.raises(ConnectionLost) as lost:
            async for _ in client.events():
                pass
        assert lost.value.code == 4001
