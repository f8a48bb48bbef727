"""The clients' tests share one live ``agentlane dev`` (the Python client's and the TypeScript
client's), and the TypeScript client's node toolchain (``npm ci`` in clients/typescript, which
scripts/system-deps.sh runs)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlane.cli.embedded_pg import free_port
from tests.dev.conftest import stop_database, stop_stack
from tests.dev.test_dev_e2e import DevStack, _start

TYPESCRIPT = Path(__file__).parent.parent.parent / "clients" / "typescript"


def node_toolchain_missing() -> str | None:
    """Why the TypeScript client's tests cannot run here, or None."""
    if shutil.which("node") is None:
        return "needs node"
    if not (TYPESCRIPT / "node_modules" / "typescript").is_dir():
        return "needs `npm ci` in clients/typescript (scripts/system-deps.sh runs it)"
    return None


# CI sets AGENTLANE_REQUIRE_BROWSER=1 (the browser's toolchain is node's): there a missing node
# or `npm ci` is a failure, not a skip.
REQUIRE_NODE = os.environ.get("AGENTLANE_REQUIRE_BROWSER") == "1"
needs_node_toolchain = pytest.mark.skipif(
    node_toolchain_missing() is not None and not REQUIRE_NODE,
    reason=str(node_toolchain_missing()),
)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """One dev stack on the offline model, whose demo tool ``send_email`` asks for approval."""
    tmp = tmp_path_factory.mktemp("clients")
    dev = _start(tmp / ".agentlane", free_port(), {"AGENTLANE_BUS": "postgres"}, tmp, "dev")
    yield dev
    stop_stack(dev)
    stop_database(dev.data_dir)
