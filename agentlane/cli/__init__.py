"""``agentlane``: the composition roots. One console script, one subcommand per component or tool.

This package may import everything (the core and every component); nothing imports it
(``tests/test_architecture.py``). Each subcommand's module exposes ``add_arguments(parser)`` and
``main(args, settings) -> int``. :func:`main` reads the settings and configures logging once, for
every subcommand, then routes; expected errors become one line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType

from agentlane.db_iam import iam_login
from agentlane.errors import AgentlaneError
from agentlane.logs import configure_logging
from agentlane.settings import Settings
from agentlane.telemetry import tracing

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


# Loaders import a subcommand's module only when it runs (each import costs start-up time), yet
# statically, so the layering checks see every edge.
def _dev() -> ModuleType:
    from agentlane.cli import dev

    return dev


def _edge() -> ModuleType:
    from agentlane.cli import edge

    return edge


def _migrate() -> ModuleType:
    from agentlane.cli import migrate

    return migrate


def _command_service() -> ModuleType:
    from agentlane.cli import command_service

    return command_service


def _runner() -> ModuleType:
    from agentlane.cli import runner

    return runner


def _projector() -> ModuleType:
    from agentlane.cli import projector

    return projector


def _gateway() -> ModuleType:
    from agentlane.cli import gateway

    return gateway


def _shards() -> ModuleType:
    from agentlane.cli import shards

    return shards


def _runs() -> ModuleType:
    from agentlane.cli import runs

    return runs


def _blobs() -> ModuleType:
    from agentlane.cli import blobs

    return blobs


def _replay() -> ModuleType:
    from agentlane.cli import replay

    return replay


@dataclass(frozen=True, slots=True)
class Subcommand:
    load: Callable[[], ModuleType]
    help: str
    #: An audit or operator tool: its output is its report, so library INFO lines only when
    #: ``AGENTLANE_LOG_LEVEL`` asks for them.
    quiet: bool = False
    #: A service: it traces when the ``OTEL_*`` variables ask for it (agentlane.telemetry).
    traced: bool = False


SUBCOMMANDS: dict[str, Subcommand] = {
    "dev": Subcommand(_dev, "run the whole stack on this machine"),
    "edge": Subcommand(
        _edge, "run the command API and the WebSocket gateway on one port", traced=True
    ),
    "migrate": Subcommand(_migrate, "apply the migrations (idempotent, safe from many pods)"),
    "command-service": Subcommand(_command_service, "run the HTTP command API", traced=True),
    "runner": Subcommand(_runner, "run a shard runner", traced=True),
    "projector": Subcommand(
        _projector, "run the projector (read models + fan-out)", traced=True
    ),
    "gateway": Subcommand(_gateway, "run the WebSocket gateway", traced=True),
    "shards": Subcommand(_shards, "show which runner owns which shard", quiet=True),
    "runs": Subcommand(_runs, "operate on unfinished runs (move them to a workflow version)",
                       quiet=True),
    "replay": Subcommand(_replay, "audit: timelines, verify, rebuild, export", quiet=True),
    "blobs": Subcommand(_blobs, "the blob store's upkeep (delete unreferenced blobs)",
                        quiet=True),
}


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, never a usage dump, on bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported and adds its arguments."""
    parser = _Parser(prog="agentlane", description="Durable, event-sourced AI-agent runs.")
    parser.add_argument("--version", action="version", version=f"agentlane {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, subcommand in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=subcommand.help, description=subcommand.help)
        if name == command:
            subcommand.load().add_arguments(sub)
    return parser


def _version() -> str:
    try:
        return metadata.version("agentlane")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _requested_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def _configure_logging(command: str, args: argparse.Namespace, settings: Settings) -> None:
    quiet = SUBCOMMANDS[command].quiet and "log_level" not in settings.model_fields_set
    # A subcommand may choose the format of its own lines with a flag (``dev --json``).
    json_lines = getattr(args, "log_json", None)
    configure_logging(
        command,
        level="WARNING" if quiet else settings.log_level,
        json_lines=settings.log_format == "json" if json_lines is None else json_lines,
        project=settings.google_cloud_project,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_requested_command(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        settings = Settings.from_env()
        _configure_logging(args.command, args, settings)
        with contextlib.ExitStack() as scope:
            if settings.db_iam_auth:
                # Every connection of this process (and its children) logs in with a token.
                url = getattr(args, "database_url", None) or (
                    settings.database_url.get_secret_value() if settings.database_url else None
                )
                scope.enter_context(iam_login(url))
            subcommand = SUBCOMMANDS[args.command]
            if subcommand.traced:
                scope.enter_context(tracing(args.command))
            return int(subcommand.load().main(args, settings))
    except AgentlaneError as exc:
        logging.getLogger("agentlane").debug("command failed", exc_info=True)
        # One line, whatever the error carries (a driver's message may run to several).
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(f"agentlane {args.command}: {first}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "SUBCOMMANDS", "build_parser", "main"]
