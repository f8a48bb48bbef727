"""``agentlane``: one console script, one subcommand per component or tool.

Each subcommand lives in the package that owns it and exposes ``add_arguments(parser)`` and
``main(args) -> int``; this module only routes, and turns expected errors into one line + exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from agentlane.errors import AgentlaneError

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("agentlane.devstack", "run the whole stack on this machine"),
    "edge": ("agentlane.edge", "run the command API and the WebSocket gateway on one port"),
    "migrate": ("agentlane.migrate_cli", "apply ddl/ (idempotent, safe from several pods)"),
    "command-service": ("command_service.main", "run the HTTP command API"),
    "runner": ("runners.main", "run a shard runner"),
    "projector": ("projector.main", "run the projector (read models + fan-out)"),
    "gateway": ("gateway.main", "run the WebSocket gateway"),
    "shards": ("runners.shards_cli", "show which runner owns which shard"),
    "replay": ("agentlane.replay.cli", "audit: timelines, verify, rebuild, export"),
}

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, never a usage dump, on bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _load(module_name: str) -> ModuleType | None:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (each import costs start-up time)."""
    parser = _Parser(prog="agentlane", description="Durable, event-sourced AI-agent runs.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = _load(module_name)
            if module is not None:
                module.add_arguments(sub)
        sub.set_defaults(_module=module_name)
    return parser


def _requested_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_requested_command(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    module = _load(args._module)
    if module is None:
        sys.stderr.write(f"agentlane {args.command}: not available yet\n")
        return EXIT_FAILURE
    try:
        return int(module.main(args))
    except AgentlaneError as exc:
        logging.getLogger("agentlane").debug("command failed", exc_info=True)
        sys.stderr.write(f"agentlane {args.command}: {exc}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
