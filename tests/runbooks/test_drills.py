"""Every runbook names a drill, and every drill runs tests that exist (a renamed test would
otherwise turn a drill into a silent no-op)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def drills() -> dict[str, list[str]]:
    text = (RUNBOOKS / "drill.sh").read_text()
    return {
        name: targets.split()
        for name, targets in re.findall(r'\[([a-z-]+)\]="([^"]+)"', text)
    }


def test_every_runbook_page_has_a_drill_and_every_drill_a_page() -> None:
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == set(drills())
    index = (RUNBOOKS / "README.md").read_text()
    for page in pages:
        assert f"({page}.md)" in index
        assert f"drill.sh {page}" in (RUNBOOKS / f"{page}.md").read_text()


@pytest.mark.parametrize("name", sorted(drills()))
def test_drill_targets_exist(name: str, repo_root: Path) -> None:
    for target in drills()[name]:
        path, _, function = target.partition("::")
        file = repo_root / path
        assert file.exists(), f"{name}: {path} does not exist"
        if function:
            assert re.search(rf"def {re.escape(function)}\(", file.read_text()), (
                f"{name}: {function} is not in {path}"
            )


def test_drill_script_refuses_an_unknown_name() -> None:
    result = subprocess.run(
        ["bash", str(RUNBOOKS / "drill.sh"), "no-such-drill"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage:")


def test_a_drill_after_the_quickstart_install_gets_its_test_tools_first(tmp_path: Path) -> None:
    """The quickstart installs no pytest: the drill says in one line that it installs the test
    tools (scripts/install.sh test), then runs. Here install.sh is a stand-in that records its
    call, in a copy of the repo's layout whose virtualenv has no pytest."""
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "runbooks" / "drill.sh").write_text((RUNBOOKS / "drill.sh").read_text())
    (tmp_path / "scripts" / "install.sh").write_text('echo "$@" > installed-with\n')
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(tmp_path / ".venv")],
                   check=True)
    result = subprocess.run(
        ["bash", str(tmp_path / "runbooks" / "drill.sh"), "runner-crash"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.stderr.splitlines()[0] == (
        "drill: installing the test tools it runs on (bash scripts/install.sh test)"
    )
    assert (tmp_path / "installed-with").read_text() == "test\n"
    # The stand-in installed nothing, so pytest is still missing: the drill fails, loudly.
    assert result.returncode != 0 and "No module named pytest" in result.stderr


def test_every_test_the_index_cites_exists(repo_root: Path) -> None:
    """The course's troubleshooting table names tests where no drill applies: they must exist."""
    index = (RUNBOOKS / "README.md").read_text()
    cited = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", index)
    assert len(cited) >= 6
    for path, function in cited:
        file = repo_root / path
        assert file.exists(), path
        if function:
            assert re.search(rf"def {re.escape(function)}\(", file.read_text()), (path, function)
