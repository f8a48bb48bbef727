"""Log lines are JSON with the work's tenant/session/execution/step, and never carry secrets."""

from __future__ import annotations

import json
import logging
import subprocess
import sys


def run_logging(code: str) -> list[dict[str, object]]:
    program = (
        "import logging\n"
        "from agentlane.logs import configure_logging, log_context\n"
        "configure_logging('runner')\n"
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
    assert lines[0]["level"] == "INFO" and lines[0]["logger"] == "agentlane.test"


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
