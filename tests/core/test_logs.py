"""Log lines are JSON with the work's tenant/session/execution/step, and never carry secrets."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys


def run_logging(code: str, *, project: str | None = None) -> list[dict[str, object]]:
    program = (
        "import logging\n"
        "from agentlane.logs import configure_logging, log_context\n"
        f"configure_logging('runner', project={project!r})\n"
        "log = logging.getLogger('agentlane.test')\n" + code
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            check=True)
    return [json.loads(line) for line in result.stderr.splitlines()]


def test_lines_carry_the_context_of_the_work() -> None:
    lines = run_logging(
        "with log_context(tenant='acme', session='s1', execution='ex_1'):\n"
        "    with log_context(step=3):\n"
        "        log.info('step done')\n"
        "    log.info('run done')\n"
        "log.info('idle')\n"
    )
    assert [line["message"] for line in lines] == ["step done", "run done", "idle"]
    assert {k: lines[0][k] for k in ("tenant", "session", "execution", "step", "component")} == {
        "tenant": "acme", "session": "s1", "execution": "ex_1", "step": 3, "component": "runner"
    }
    assert "step" not in lines[1] and lines[1]["execution"] == "ex_1"
    assert "tenant" not in lines[2]
    assert lines[0]["severity"] == "INFO" and lines[0]["logger"] == "agentlane.test"


def test_context_bound_in_a_task_stays_in_that_task() -> None:
    """A socket's handler binds its tenant and session for the rest of its own task."""
    lines = run_logging(
        "import asyncio\n"
        "from agentlane.logs import bind_log_context\n"
        "async def socket(session):\n"
        "    bind_log_context(tenant='acme', session=session)\n"
        "    await asyncio.sleep(0)\n"
        "    log.info('frame')\n"
        "async def main():\n"
        "    with log_context(execution='ex_1'):\n"
        "        await asyncio.gather(socket('s1'), socket('s2'))\n"
        "        log.info('after')\n"
        "asyncio.run(main())\n"
    )
    frames = [line for line in lines if line["message"] == "frame"]
    assert sorted((f["session"], f["tenant"], f["execution"]) for f in frames) == [
        ("s1", "acme", "ex_1"), ("s2", "acme", "ex_1")
    ]
    after = next(line for line in lines if line["message"] == "after")
    assert "session" not in after and after["execution"] == "ex_1"


def test_passwords_in_urls_are_redacted() -> None:
    lines = run_logging(
        "log.warning('cannot reach postgresql://app:hunter2@db:5432/agentlane')\n"
        "log.warning('cannot reach %s', 'postgresql://app:hunter2@db:5432/agentlane')\n"
    )
    assert "hunter2" not in json.dumps(lines)
    assert all("app:***@db" in line["message"] for line in lines) and len(lines) == 2


def test_library_info_chatter_is_quiet() -> None:
    assert run_logging("logging.getLogger('httpx').info('HTTP Request: GET ...')\n") == []


def test_redact_leaves_plain_text_alone() -> None:
    from agentlane.logs import redact

    assert redact("no url here: a:b@c") == "no url here: a:b@c"
    assert logging.getLogger("agentlane").name == "agentlane"


def test_lines_are_what_cloud_logging_reads() -> None:
    """``severity``, an RFC 3339 UTC ``time``, ``stack_trace`` for an exception, and the trace
    fields inside a traced request (with the project, the full resource name)."""
    lines = run_logging(
        "log.warning('slow')\n"
        "try:\n"
        "    1 / 0\n"
        "except ZeroDivisionError:\n"
        "    log.exception('failed')\n"
        "with log_context(trace='4bf92f3577b34da6a3ce929d0e0e4736', span='00f067aa0ba902b7',"
        " trace_sampled=True):\n"
        "    log.info('traced')\n",
        project="agentlane-prod",
    )
    assert [line["severity"] for line in lines] == ["WARNING", "ERROR", "INFO"]
    for line in lines:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(line["time"]))
        assert "level" not in line
    assert "ZeroDivisionError" in str(lines[1]["stack_trace"])
    assert "stack_trace" not in lines[0]
    traced = lines[2]
    assert traced["logging.googleapis.com/trace"] == (
        "projects/agentlane-prod/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert traced["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert traced["logging.googleapis.com/trace_sampled"] is True
    assert "trace" not in traced and "logging.googleapis.com/trace" not in lines[0]


def test_a_traceparent_is_read_only_when_it_is_one() -> None:
    from agentlane.trace_context import parse_traceparent

    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert parse_traceparent(good) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True
    )
    assert parse_traceparent(good[:-2] + "00")[2] is False  # type: ignore[index]
    for bad in (None, "", "garbage", good.upper(), "01" + good[2:],
                "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01"):
        assert parse_traceparent(bad) is None
