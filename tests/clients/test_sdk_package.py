"""The Python client is a light distribution of its own: its wheel builds offline, carries the
transcript fold and the backoff as files (the same source as the server's), and needs nothing of
the server: no agentlane import, no database driver, no Pub/Sub."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
SDK = ROOT / "clients" / "python"
ALLOWED = {"httpx", "websockets", "pydantic"}


def test_the_wheel_is_light_and_whole(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(SDK)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("agentlane_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = Parser().parsestr(
            archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        )
        shipped = archive.read("agentlane_client/transcript.py").decode()
    requires = {r.split(">")[0].split("=")[0].split("<")[0].strip()
                for r in metadata.get_all("Requires-Dist") or []}
    assert requires == ALLOWED
    # The fold in the wheel is the server's, byte for byte (a link in the source tree).
    assert shipped == (ROOT / "agentlane" / "transcript.py").read_text()
    assert {"agentlane_client/_backoff.py", "agentlane_client/py.typed"} <= names


def test_the_client_imports_nothing_of_the_server() -> None:
    stdlib = set(sys.stdlib_module_names)
    for path in (SDK / "src" / "agentlane_client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib | ALLOWED | {"agentlane_client", "__future__"}, (
                    f"{path.name} imports {name}"
                )
