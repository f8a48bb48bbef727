"""The shape of the code, checked: layers (import-linter contracts in pyproject.toml) and tables
with one owner each (docs/architecture.md)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

PACKAGES = ("agentlane", "command_service", "runners", "projector", "gateway")

#: Every table and the one place whose SQL may name it (a module, or a package ending in "/").
OWNERS: dict[str, str] = {
    "agent_events": "agentlane/store/",
    "agent_stream_heads": "agentlane/store/",
    "agent_event_blobs": "agentlane/store/",
    "projector_checkpoints": "agentlane/store/",
    "run_index": "agentlane/run_index.py",
    "cluster_shards": "agentlane/leases.py",
    "projector_lease": "agentlane/leases.py",
    "cluster_config": "agentlane/leases.py",
    "cluster_runners": "runners/membership.py",
    "read_runs": "agentlane/readmodels/",
    "read_sessions": "agentlane/readmodels/",
    "read_usage_daily": "agentlane/readmodels/",
    "projector_publish_heads": "projector/publish_heads.py",
    "schema_migrations": "agentlane/migrate.py",
}
#: A table named where SQL names one: after FROM, JOIN, INTO, UPDATE, TABLE (uppercase SQL only,
#: so prose in docstrings does not count).
_TABLE_IN_SQL = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(\w+)")


def _sources(repo_root: Path) -> list[Path]:
    return sorted(p for package in PACKAGES for p in (repo_root / package).rglob("*.py"))


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [(token.start[0], token.string) for token in tokens if token.type == tokenize.STRING]


def _owned_by(relative: str, owner: str) -> bool:
    return relative.startswith(owner) if owner.endswith("/") else relative == owner


def test_the_import_linter_contracts_hold(repo_root: Path) -> None:
    """The layers: the core imports no component and nothing imports ``agentlane.cli``; the
    components are independent; the engine knows no workflow; only owners use the driver."""
    linter = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(linter), "--no-cache"], cwd=repo_root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_table_is_written_about_only_by_its_owner(repo_root: Path) -> None:
    strays = []
    for path in _sources(repo_root):
        relative = path.relative_to(repo_root).as_posix()
        for line, text in _string_literals(path):
            for table in _TABLE_IN_SQL.findall(text):
                owner = OWNERS.get(table)
                if owner is not None and not _owned_by(relative, owner):
                    strays.append(f"{relative}:{line}: SQL about {table} (owner: {owner})")
    assert strays == []


def test_no_module_reaches_into_a_pool(repo_root: Path) -> None:
    """Owners keep their pool private: a connection comes from ``Database`` (agentlane.db)."""
    reaching = [
        f"{path.relative_to(repo_root)}:{number}"
        for path in _sources(repo_root)
        if path.relative_to(repo_root).as_posix() != "agentlane/db.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\.(_?pool)\b", line) and "AsyncConnectionPool" not in line
    ]
    assert reaching == []


@pytest.mark.parametrize("table", sorted(OWNERS))
def test_every_owner_holds_sql_about_its_table(repo_root: Path, table: str) -> None:
    """The map above is true: each owner really is where its table's SQL lives."""
    owner = OWNERS[table]
    owned = [
        text
        for path in _sources(repo_root)
        if _owned_by(path.relative_to(repo_root).as_posix(), owner)
        for _, text in _string_literals(path)
    ]
    assert any(table in text for text in owned), f"{owner} has no SQL about {table}"
