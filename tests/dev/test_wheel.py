"""The wheel a user installs works on its own: built from the source, installed (not editable) into
a clean virtualenv, it answers ``--version`` and ``python -m agentlane --help`` and migrates a
database. The dependencies come from this virtualenv's site-packages by a path entry, so nothing
is downloaded and agentlane itself can only come from the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import psycopg
import pytest

import gateway
from agentlane.migrate import default_ddl_dir

pytestmark = pytest.mark.slow

SOURCES = ("agentlane", "command_service", "runners", "projector", "gateway")


@pytest.fixture(scope="module")
def wheel(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root / name, source / name)
    for name in SOURCES:
        shutil.copytree(
            repo_root / name, source / name,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(source)],
        check=True, capture_output=True,
    )
    (built,) = out.glob("agentlane-*.whl")
    return built


@pytest.fixture(scope="module")
def clean_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", purelib], check=True, capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # A path entry, not a site dir: this venv's .pth files (the editable agentlane) stay unread.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True,
    )
    return venv


def _run(venv: Path, *argv: str, env: dict[str, str] | None = None) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "DATABASE_URL"}}
    done = subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]], capture_output=True, text=True,
        env={**environ, **(env or {})}, cwd=venv, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_carries_the_migrations_and_types_and_no_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    ddl = {f"agentlane/ddl/{path.name}" for path in default_ddl_dir().glob("*.sql")}
    assert ddl and ddl <= names
    assert {"agentlane/py.typed", "runners/py.typed"} <= names
    # The console and the client modules it imports (gateway/static/client/).
    static = Path(gateway.__file__).parent / "static"
    served = {f"gateway/{p.relative_to(static.parent)}" for p in static.rglob("*") if p.is_file()}
    assert "gateway/static/client/transcript.js" in served and served <= names
    assert not any(name.startswith(("tests/", "benchmarks/", "infra/")) for name in names)


def test_the_installed_wheel_answers_from_its_own_files(clean_venv: Path) -> None:
    location = _run(clean_venv, "python", "-c", "import agentlane; print(agentlane.__file__)")
    assert Path(location.strip()).is_relative_to(clean_venv)
    assert _run(clean_venv, "agentlane", "--version").strip() == (
        f"agentlane {metadata.version('agentlane')}"
    )
    assert "replay" in _run(clean_venv, "python", "-m", "agentlane", "--help")


def test_the_installed_wheel_migrates_a_database(
    clean_venv: Path, empty_database_url: str
) -> None:
    out = _run(clean_venv, "agentlane", "migrate", env={"DATABASE_URL": empty_database_url})
    assert out.startswith("migrated: 0001_")
    with psycopg.connect(empty_database_url) as conn:
        applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert applied is not None and applied[0] == len(list(default_ddl_dir().glob("*.sql")))
    assert "nothing to apply" in _run(
        clean_venv, "agentlane", "migrate", "--database-url", empty_database_url
    )
