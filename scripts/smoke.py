"""The deploy pipeline's smoke test against a deployed agentlane (or `agentlane dev`):

    python scripts/smoke.py --url https://agentlane.example.com [--token-command "gcloud …"]

Gets a token (``--token``, or the output of ``--token-command``: with the stacks' Google ID
tokens, ``gcloud auth print-identity-token --audiences=AUDIENCE``), starts a run over HTTP, watches
it on the session's WebSocket until it ends, and checks what a user would: the run completed, the
streamed answer reads clean and equals the answer ``GET /runs/{id}`` gives. One line on stdout,
exit 0 when it passed, 1 when it did not (the pipeline rolls back then).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import subprocess
import sys
import time
import uuid

from agentlane_client import AgentlaneClientError, AsyncClient, Ended, Reset, TextDelta

MESSAGE = "Smoke test from the deploy pipeline: reply with one short sentence."


async def smoke(url: str, token: str | None, timeout_s: float) -> str:
    """What was checked, or raise AssertionError/AgentlaneClientError naming what failed."""
    session = f"smoke-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    shown: dict[int, str] = {}
    resets = 0
    async with AsyncClient(url, token=token) as client, asyncio.timeout(timeout_s):
        accepted = await client.runs.create(session, MESSAGE, run_id=f"{session}-run")
        ended = None
        async for change in client.runs.follow(accepted):
            if isinstance(change, TextDelta):
                shown[change.step] = shown.get(change.step, "") + change.text
            elif isinstance(change, Reset):
                shown[change.step], resets = "", resets + 1
            elif isinstance(change, Ended):
                ended = change
        assert ended is not None and ended.status == "completed", f"the run ended {ended}"
        run = await client.runs.get(accepted.execution_id)
    assert run.status == "completed", f"GET /runs says {run.status}"
    streamed = shown[max(shown)] if shown else ""
    assert streamed == run.answer, f"streamed {streamed!r} but the answer is {run.answer!r}"
    return (
        f"smoke: ok, run {accepted.execution_id} completed in {time.monotonic() - started:.1f}s "
        f"({run.usage.output_tokens} output tokens, {resets} resets)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the deployment (HTTP and /ws/ on it)")
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument("--token", help="a bearer token")
    tokens.add_argument("--token-command", help="a command that prints a bearer token")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds (180)")
    args = parser.parse_args(argv)
    token = args.token
    if args.token_command:
        token = subprocess.run(
            shlex.split(args.token_command), capture_output=True, text=True, check=True,
            timeout=60,
        ).stdout.strip()
    try:
        print(asyncio.run(smoke(args.url, token, args.timeout)))
    except (AssertionError, AgentlaneClientError, TimeoutError, OSError) as exc:
        print(f"smoke: FAILED: {type(exc).__name__}: {exc}".strip())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
