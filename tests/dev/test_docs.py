"""docs/contract.md stays true: its environment table names exactly the variables the code reads,
and its CLI table names exactly the commands and options the parser has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from agentlane.cli import SUBCOMMANDS, build_parser
from agentlane.cli.command_service import LIMIT_ENV_VARS
from agentlane.settings import ENV_VARS
from agentlane.telemetry import ENV_VARS as TRACING_ENV_VARS

CODE = re.compile(r"`([^`]+)`")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


@pytest.fixture(scope="module")
def contract(repo_root: Path) -> str:
    return (repo_root / "docs" / "contract.md").read_text()


def _section(text: str, heading: str) -> list[str]:
    """The lines under ``## heading`` up to the next second-level heading."""
    lines = text.splitlines()
    start = lines.index(f"## {heading}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def _rows(lines: list[str]) -> list[list[str]]:
    """The body rows of every markdown table in ``lines`` (header and rule left out)."""
    rows: list[list[str]] = []
    previous_was_table = False
    for line in lines:
        if not line.startswith("|"):
            previous_was_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if previous_was_table and not set("".join(cells)) <= set("-: "):
            rows.append(cells)
        previous_was_table = True
    # Each table's first line is its header: drop it (the rule after it was never added).
    return [row for row in rows if not _is_header(row)]


def _is_header(cells: list[str]) -> bool:
    return not CODE.search(cells[0])


def test_the_environment_table_is_every_variable_the_code_reads(contract: str) -> None:
    documented: set[str] = set()
    for row in _rows(_section(contract, "Environment")):
        documented |= {name for name in CODE.findall(row[0]) if re.fullmatch(r"[A-Z_]+", name)}
    expected = ENV_VARS | LIMIT_ENV_VARS | TRACING_ENV_VARS
    assert documented - expected == set(), "documented, but no component reads them"
    assert expected - documented == set(), "read by the code, missing from docs/contract.md"


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command path (``agentlane``, ``agentlane replay verify``) -> its parser."""
    found: dict[str, argparse.ArgumentParser] = {"agentlane": build_parser()}
    for name in SUBCOMMANDS:
        root = build_parser(name)
        stack = [(f"agentlane {name}", _children(root)[name])]
        while stack:
            path, parser = stack.pop()
            found[path] = parser
            stack += [(f"{path} {child}", sub) for child, sub in _children(parser).items()]
    return found


def _children(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_the_cli_table_is_every_command_and_option_of_the_parser(contract: str) -> None:
    parsers = _parsers()
    documented: dict[str, set[str]] = {}
    for row in _rows(_section(contract, "CLI")):
        command = CODE.findall(row[0])[0]
        assert command not in documented, f"{command} is documented twice"
        documented[command] = set(OPTION.findall(row[1]))
    assert set(documented) == set(parsers), "the CLI table and the parser name different commands"
    for command, parser in parsers.items():
        assert documented[command] == _options(parser), command


def test_the_readme_links_the_contract_and_the_design(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text()
    for page in ("docs/contract.md", "docs/design.md", "docs/security.md"):
        assert f"]({page})" in readme
        assert (repo_root / page).exists()
    assert "shared folder" not in readme


def test_every_test_file_the_docs_cite_exists(repo_root: Path) -> None:
    """The design and security pages prove their claims by naming tests: a renamed test would
    leave a claim without its proof."""
    for page in ("design.md", "security.md"):
        text = (repo_root / "docs" / page).read_text()
        for cited in set(re.findall(r"tests/[\w/]+\.py", text)):
            assert (repo_root / cited).exists(), f"docs/{page} cites {cited}, which is gone"
