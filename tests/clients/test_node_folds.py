"""The JavaScript transcript fold (the console's) passes the same recorded cases as the core fold:
``node --test`` over tests/clients/transcript.test.mjs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).parent / "transcript.test.mjs"


@pytest.mark.skipif(
    shutil.which("node") is None and os.environ.get("CI") != "true",
    reason="needs node (CI has it)",
)
def test_the_javascript_fold_passes_the_recorded_cases() -> None:
    result = subprocess.run(
        ["node", "--test", str(TESTS)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
