"""The console in headless Chromium on ``agentlane dev``: a message long enough for the blob store
shows as a reference the page loads on demand (checked against its hash by the client), and
"fork here" starts a new session from the run's last event, which the page then follows, naming
its parent. The screenshot is kept in test-artifacts/."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.dev.test_dev_e2e import DevStack
from tests.fixtures.browser import BROWSER_DIR, DRIVER_ENV, needs_browser

pytestmark = needs_browser


@pytest.mark.slow
def test_the_console_loads_a_blob_and_forks_the_session(stack: DevStack, repo_root: Path) -> None:
    artifacts = repo_root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    driven = subprocess.run(
        ["node", str(BROWSER_DIR / "drive_blob_fork.mjs"), f"{stack.http}/?session=console-blob",
         str(artifacts / "dev-console-blob-fork.png")],
        cwd=BROWSER_DIR, capture_output=True, text=True, env=DRIVER_ENV, timeout=120,
    )
    assert driven.returncode == 0, driven.stderr[-2000:]
    shown = json.loads(driven.stdout.strip().splitlines()[-1])
    assert "bytes in the blob store" in shown["offered"]
    assert shown["loadedMatches"] and shown["loadedLength"] == 40_005
    assert shown["parent"] == "console-blob" and shown["child"].startswith("console-blob-fork-")
    assert shown["forked"].startswith("forked from console-blob at event #")
    assert f"session={shown['child']}" in shown["address"]
    # The fork shows its own run only: the parent's history is referenced, not copied.
    assert shown["runs"] == 1 and "and now?" in shown["answer"]
