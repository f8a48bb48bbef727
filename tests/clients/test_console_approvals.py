"""The console in headless Chromium through an approval on ``agentlane dev``: it counts down to
the approval's deadline (the demo tool's five minutes), the approval goes through, and the run
shows what it cost (dev prices the offline model). The screenshot is kept in test-artifacts/."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.dev.test_dev_e2e import DevStack
from tests.fixtures.browser import BROWSER_DIR, DRIVER_ENV, needs_browser

pytestmark = needs_browser


@pytest.mark.slow
def test_the_console_counts_down_an_approval_and_shows_the_runs_cost(
    stack: DevStack, repo_root: Path
) -> None:
    artifacts = repo_root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    driven = subprocess.run(
        ["node", str(BROWSER_DIR / "drive_approval.mjs"), f"{stack.http}/?session=console-ok",
         str(artifacts / "dev-console-approval.png")],
        cwd=BROWSER_DIR, capture_output=True, text=True, env=DRIVER_ENV, timeout=120,
    )
    assert driven.returncode == 0, driven.stderr[-2000:]
    shown = json.loads(driven.stdout.strip().splitlines()[-1])
    # The deadline the Suspended recorded, about five minutes ahead, counted down on the page.
    deadline = datetime.fromisoformat(shown["deadline"])
    assert timedelta(minutes=4) < deadline - datetime.now(UTC) <= timedelta(minutes=5)
    counts = [re.search(r"in (\d+):(\d\d)", text) for text in (shown["first"], shown["later"])]
    assert all(counts), shown
    first, later = (int(m.group(1)) * 60 + int(m.group(2)) for m in counts if m)
    assert 240 < later < first <= 300
    # Approved in time: the countdown is gone and the tool ran.
    assert not shown["afterwards"]
    assert '"recorded":true' in shown["tools"].replace(" ", "")
    assert shown["costMicros"] > 0 and "$0." in shown["usage"]
