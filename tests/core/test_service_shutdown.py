"""A process stops within its one grace period after SIGTERM, whatever hangs: the platform's
SIGKILL comes at a fixed time (Cloud Run: 10 s), so the drain and the requests still in flight
share that time rather than getting it each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx

from agentlane.cli.embedded_pg import free_port

GRACE_S = 3.0

_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from starlette.routing import Route
    from agentlane.service import metrics_registry, run_service

    class Stuck:
        name = "stuck"
        async def __aenter__(self): return self
        async def __aexit__(self, *exc): pass
        def routes(self):
            async def hang(request):
                await asyncio.Event().wait()
            return [Route("/hang", hang)]
        def is_ready(self): return True
        async def drain(self):
            await asyncio.Event().wait()  # never drains

    asyncio.run(run_service(
        [Stuck()], host="127.0.0.1", port=int(sys.argv[1]), registry=metrics_registry(),
        grace_s=float(sys.argv[2]),
    ))
    """
)


def test_a_stuck_drain_and_a_stuck_request_share_one_grace_period() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(port), str(GRACE_S)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "never served"
            time.sleep(0.05)
        outcome: list[object] = []

        def hang() -> None:
            try:
                outcome.append(httpx.get(f"http://127.0.0.1:{port}/hang", timeout=60))
            except httpx.HTTPError as exc:
                outcome.append(exc)

        waiting = threading.Thread(target=hang)
        waiting.start()
        time.sleep(0.5)  # the request is in flight
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        took = time.monotonic() - sent
        waiting.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    # It waited for the drain (the grace), and no longer: not a second grace for the request.
    assert GRACE_S - 0.5 <= took < 2 * GRACE_S - 0.5, took
    (cut,) = outcome  # the hanging request was cut, not answered as if it had succeeded
    assert not isinstance(cut, httpx.Response) or cut.status_code >= 500, cut
