"""The JavaScript transcript fold the console serves (gateway/static/client/transcript.js, the
TypeScript client's fold compiled) passes the same recorded cases as the core fold, and gives
every recorded log exactly the core's transcript. Needs node only (no `npm ci`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from agentlane.transcript import transcript_of

ROOT = Path(__file__).parent.parent.parent
SERVED = ROOT / "gateway" / "static" / "client" / "transcript.js"
TESTS = ROOT / "clients" / "typescript" / "test" / "transcript.test.mjs"
FIXTURES = ROOT / "tests" / "fixtures" / "transcripts"

needs_node = pytest.mark.skipif(
    shutil.which("node") is None and os.environ.get("AGENTLANE_REQUIRE_BROWSER") != "1"
    and os.environ.get("CI") != "true",
    reason="needs node (CI has it)",
)


@needs_node
def test_the_served_fold_passes_the_recorded_cases() -> None:
    result = subprocess.run(
        ["node", "--test", str(TESTS)], capture_output=True, text=True, timeout=120,
        check=False, env={**os.environ, "AGENTLANE_TRANSCRIPT_MODULE": str(SERVED)},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout


@needs_node
def test_the_served_fold_gives_every_recorded_log_the_cores_transcript() -> None:
    script = (
        f"import {{ transcriptOf }} from {json.dumps(SERVED.as_uri())};\n"
        "import { readdirSync, readFileSync } from 'node:fs';\n"
        f"const dir = {json.dumps(str(FIXTURES))};\n"
        "const out = {};\n"
        "for (const f of readdirSync(dir).filter((f) => f.endsWith('.events.json')))\n"
        "  out[f] = transcriptOf(JSON.parse(readFileSync(`${dir}/${f}`, 'utf8'))).toJSON();\n"
        "console.log(JSON.stringify(out));\n"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script], capture_output=True, text=True,
        timeout=60, check=True,
    )
    folded = json.loads(result.stdout)
    logs = sorted(FIXTURES.glob("*.events.json"))
    assert sorted(folded) == [path.name for path in logs]
    for path in logs:
        assert folded[path.name] == transcript_of(json.loads(path.read_text())).to_json(), path.name
