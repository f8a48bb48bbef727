"""The browser console in headless Chromium: start a run, cut its socket from the server side
mid-stream, the page reconnects by itself and shows every token exactly once.

Needs Debian's ``chromium`` and ``node`` with tests/gateway/browser/node_modules (``npm ci`` there:
playwright-core, pinned, drives the system browser; nothing is downloaded at run time).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from agentlane.records import NewEvent
from gateway.protocol import CLOSE_SLOW_CONSUMER
from tests.fixtures.browser import BROWSER_DIR, DRIVER_ENV, needs_browser
from tests.gateway.harness import GatewayThread, gateway_thread

TOKENS = 40
CUT_AT = 15

pytestmark = needs_browser


async def _cut_every_socket(gw: GatewayThread) -> int:
    for connection in tuple(gw.gateway.connections):
        connection.close(CLOSE_SLOW_CONSUMER, "cut by the test")
    return len(gw.gateway.connections)


async def _accepted_execution(gw: GatewayThread, session: str) -> str | None:
    events = await gw.store.read_session("default", session)
    return next((e.execution_id for e in events if e.type == "RunAccepted"), None)


@pytest.mark.parametrize("crash", [False, True], ids=["cut-socket", "cut-socket-and-crash"])
def test_console_resumes_without_repeating_or_losing_a_token(
    database_url: str, repo_root: Path, crash: bool
) -> None:
    """With ``crash``, the runner streaming the answer is lost after CUT_AT tokens as well: the
    runner taking over declares that attempt abandoned and streams the answer whole as attempt 2,
    and the page must show attempt 2's text only, once (docs/contract.md, "Streams")."""
    artifacts = repo_root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / f"gateway-console{'-crash' if crash else ''}.png"
    session = f"browser-{int(crash)}"
    with gateway_thread(database_url) as gw:
        driver = asyncio.run_coroutine_threadsafe(
            asyncio.create_subprocess_exec(
                "node", str(BROWSER_DIR / "drive_console.mjs"),
                f"{gw.http_url}/?session={session}", str(screenshot),
                cwd=BROWSER_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=DRIVER_ENV,
            ),
            gw.loop,
        ).result(30)
        # The page asks through its socket; the run's tokens are then "streamed" by this test
        # playing the runner (appending Token events slowly enough to cut the stream midway).
        deadline = time.monotonic() + 60
        execution = None
        while execution is None:
            assert time.monotonic() < deadline, "the page never asked"
            execution = gw.run(_accepted_execution(gw, session))
            time.sleep(0.05)
        gw.run(gw.store.append(NewEvent(
            "default", session, "RunStarted", {"workflow": "agent", "version": "1"},
            execution_id=execution,
        )))

        def stream(attempt: int, count: int, *, cut: bool) -> str:
            streamed = ""
            for index in range(count):
                text = f"a{attempt}-tok{index} "
                streamed += text
                tags = {"step": 0, "attempt": attempt} if crash else {}
                gw.run(gw.store.append(NewEvent(
                    "default", session, "Token", {"text": text, "index": index, **tags},
                    execution_id=execution,
                )))
                if cut and index == CUT_AT:
                    assert gw.run(_cut_every_socket(gw)) >= 1
                time.sleep(0.03)
            return streamed

        if crash:
            stream(1, CUT_AT + 5, cut=True)  # the lost runner's partial answer
            gw.run(gw.store.append(NewEvent(
                "default", session, "StepFailed",
                {"step": 0, "name": "model", "attempt": 1, "error": "abandoned: lost",
                 "retryable": True, "abandoned": True},
                execution_id=execution,
            )))
            expected = stream(2, TOKENS, cut=False)
        else:
            expected = stream(1, TOKENS, cut=True)
        gw.run(gw.store.append(NewEvent(
            "default", session, "Completed", {"answer": expected}, execution_id=execution,
        )))
        stdout, stderr = asyncio.run_coroutine_threadsafe(driver.communicate(), gw.loop).result(90)
        assert driver.returncode == 0, stderr.decode()[-3000:]
    shown = json.loads(stdout.decode().strip().splitlines()[-1])
    assert shown["text"] == expected
    # Every Token frame rendered once (the abandoned attempt's too, before its reset).
    assert shown["tokens"] == TOKENS + (CUT_AT + 5 if crash else 0)
    assert shown["resets"] == (1 if crash else 0)
    assert shown["connections"] >= 2, shown  # it really was cut, and came back by itself
    assert screenshot.stat().st_size > 0
