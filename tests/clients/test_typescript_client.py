"""The TypeScript client (clients/typescript, ``@agentlane/client``): its generated types are those
of the server's current schemas, the console serves its current compiled modules, the gateway
publishes the frames' schema, and its node tests pass (``node --test``): the transcript fold
against the shared recorded logs, the socket against a scripted WebSocket, and the client against
the live ``agentlane dev`` the Python client's tests use too (tests/clients/conftest.py)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from gateway.protocol import frames_json_schema
from tests.clients.conftest import TYPESCRIPT, needs_node_toolchain, node_toolchain_missing
from tests.dev.test_dev_e2e import DevStack

STATIC_CLIENT = TYPESCRIPT.parent.parent / "gateway" / "static" / "client"
NODE_TESTS = ("transcript.test.mjs", "socket.test.mjs", "live.test.mjs")


def _dump_schemas() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dump_schemas", TYPESCRIPT / "scripts" / "dump_schemas.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _node(*argv: str | Path, timeout_s: float = 120, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["node", *map(str, argv)], cwd=TYPESCRIPT, capture_output=True, text=True,
        timeout=timeout_s, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", **(env or {})},
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def built() -> Path:
    """``tsc`` compiles the client into clients/typescript/dist (as ``npm run build`` does,
    without copying into the console: the test compares that copy)."""
    missing = node_toolchain_missing()
    if missing is not None:
        pytest.fail(f"{missing} (AGENTLANE_REQUIRE_BROWSER=1)")
    _node(TYPESCRIPT / "node_modules" / "typescript" / "bin" / "tsc", "-p", TYPESCRIPT)
    return TYPESCRIPT / "dist"


def test_the_committed_schemas_are_the_servers() -> None:
    """The generated types are made from the copies in clients/typescript/schema: those must be
    what the code publishes now (else: `npm run generate` there, and commit what changed)."""
    assert _dump_schemas().stale() == []


@pytest.mark.slow
def test_the_gateway_publishes_its_frames_schema(stack: DevStack) -> None:
    answer = httpx.get(f"{stack.http}/ws-schema.json", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == frames_json_schema()


@needs_node_toolchain
def test_the_generated_types_are_current(tmp_path: Path) -> None:
    """The committed generated .ts files are what the generators make of the committed schemas."""
    missing = node_toolchain_missing()
    if missing is not None:
        pytest.fail(f"{missing} (AGENTLANE_REQUIRE_BROWSER=1)")
    _node(TYPESCRIPT / "scripts" / "generate-types.mjs", tmp_path)
    generated = TYPESCRIPT / "src" / "generated"
    for name in ("openapi.ts", "frames.ts"):
        assert (generated / name).read_text() == (tmp_path / name).read_text(), (
            f"clients/typescript/src/generated/{name} is stale: `npm run generate` there"
        )


@needs_node_toolchain
def test_the_console_serves_the_current_compiled_client(built: Path) -> None:
    """gateway/static/client/ holds the compiled modules (`npm run build` copies them), so the
    gateway serves the client with no build step at run time."""
    compiled = {path.name: path.read_text() for path in built.glob("*.js")}
    served = {path.name: path.read_text() for path in STATIC_CLIENT.glob("*.js")}
    assert {"transcript.js", "socket.js"} <= set(compiled)
    assert set(served) == set(compiled), "`npm run build` in clients/typescript"
    for name, text in compiled.items():
        banner = (
            f"// Compiled from clients/typescript/src/{name.removesuffix('.js')}.ts by "
            "`npm run build`: do not edit.\n"
        )
        assert served[name] == banner + text, f"gateway/static/client/{name} is stale"


@pytest.mark.slow
@needs_node_toolchain
def test_the_node_tests_pass_against_a_live_stack(built: Path, stack: DevStack) -> None:
    out = _node(
        "--test", *(Path("test") / name for name in NODE_TESTS), timeout_s=240,
        env={"AGENTLANE_URL": stack.http},
    )
    assert "# fail 0" in out and "# cancelled 0" in out, out[-4000:]
    assert "AGENTLANE_URL is not set" not in out  # the live tests ran
    passed = int(out.rsplit("# pass ", 1)[1].split()[0])
    assert passed >= 20, out[-4000:]
