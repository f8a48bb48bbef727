"""The real ``agentlane command-service`` process, fuzzed by schemathesis from its own
/openapi.json: no 5xx, and every response matches the documented status, media type, headers and
schema. Then SIGTERM: it drains and exits 0."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.command_service.conftest import AUDIENCE, SECRET, make_token
from tests.conftest import TEST_SHARDS, as_app
from tests.fixtures.processes import spawn, stop_all

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
        "missing_required_header",
    ]
)


def test_schemathesis_finds_no_5xx_and_no_schema_breaks(
    database_url: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": as_app(database_url),
        "AGENTLANE_AUTH": "jwt",
        "AGENTLANE_JWT_SECRET": SECRET,
        "AGENTLANE_JWT_AUDIENCE": AUDIENCE,
        "AGENTLANE_SHARDS": str(TEST_SHARDS),
    }
    proc = spawn(
        "command-service",
        ["command-service", "--host", "127.0.0.1", "--rate", "0", "--max-active-runs", "0"],
        env=env,
        log_dir=tmp_path,
    )
    try:
        proc.wait_http("/readyz")
        token = make_token("fuzz", ttl_s=600)
        # A run to give the id-taking operations something real to hit.
        started = httpx.post(
            f"{proc.base_url}/agents/fuzz-session/runs",
            json={"runId": "seed", "message": "m"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert started.status_code == 202
        st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert st is not None
        result = subprocess.run(
            [
                st, "run", f"{proc.base_url}/openapi.json",
                "--checks", CHECKS,
                "--max-examples", "30",
                "--phases", "examples,coverage,fuzzing",
                "--header", f"Authorization: Bearer {token}",
                "--request-timeout", "10",
                "--seed", "4",
                "--workers", "1",  # CPython 3.11 ast.parse is not thread-safe (hypothesis uses it)
                "--no-color",
                "--generation-database", "none",
                "--report-dir", str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        (tmp_path / "schemathesis.txt").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        assert '"severity": "ERROR"' not in proc.log()
        assert proc.terminate() == 0
    finally:
        stop_all([proc])
