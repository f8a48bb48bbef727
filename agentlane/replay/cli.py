"""``agentlane replay``: the audit CLI (timelines, verify, rebuild, export).

Exit codes: 0 done (verify: everything agrees), 1 a failed check or an expected error (one line on
stderr), 2 bad arguments. Output for people is a rich table on a terminal; ``--json`` (and export)
are for machines. Progress bars go to stderr and only when it is a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from rich.console import Console

from agentlane.db import translate_errors
from agentlane.logs import configure_logging
from agentlane.replay import export as export_mod
from agentlane.replay import timeline
from agentlane.errors import StoreError
from agentlane.replay.errors import NothingToReplay, ReplayError
from agentlane.replay.progress import progress, wanted
from agentlane.replay.readmodels import discover
from agentlane.replay.rebuild import rebuild
from agentlane.replay.source import EVENT_COLUMNS, EventFilter, count_events, snapshot, stream_rows
from agentlane.replay.verify import Mismatch, verify
from agentlane.settings import Settings
from agentlane.store import row_to_event


def parse_time(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time or date; one without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use RFC 3339, e.g. 2026-01-31T12:00:00Z or 2026-01-31"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid event id {text!r}: a positive integer")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", help="the event store (default: DATABASE_URL)")
    commands = parser.add_subparsers(
        dest="replay_command", metavar="SUBCOMMAND", required=True, parser_class=type(parser)
    )

    session = commands.add_parser(
        "session", help="a session's timeline with the state folded after each event"
    )
    session.add_argument("session", metavar="SESSION")
    session.add_argument("--tenant", default="default", help="tenant id (default: %(default)s)")
    session.add_argument(
        "--until", type=positive_int, metavar="EVENT_ID",
        help="time travel: stop after this event id",
    )
    session.add_argument("--json", action="store_true", help="NDJSON: one {event, run, session} a line")

    run = commands.add_parser("run", help="one run's journal and final state")
    run.add_argument("execution", metavar="EXECUTION_ID")
    run.add_argument("--tenant", help="only this tenant's run")
    run.add_argument("--json", action="store_true", help="one JSON object: state and events")

    check = commands.add_parser(
        "verify", help="check hash chains, seq, journal invariants and read models; exit 1 on any mismatch"
    )
    check.add_argument("--tenant", help="only this tenant's streams")
    check.add_argument("--json", action="store_true", help="NDJSON: one mismatch a line, then a summary")

    commands.add_parser("rebuild", help="recreate the read models from events and swap them in")

    dump = commands.add_parser("export", help="NDJSON of the Event JSON, one event a line")
    dump.add_argument("--tenant", help="only this tenant")
    dump.add_argument("--session", help="only this session id")
    dump.add_argument(
        "--since", type=parse_time, metavar="TIME",
        help="only events created at or after TIME (RFC 3339; UTC when no offset)",
    )


def main(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    configure_logging("replay", level=settings.log_level, json_lines=settings.log_format == "json")
    url = args.database_url or settings.require_database_url()
    handler = {
        "session": _session,
        "run": _run,
        "verify": _verify,
        "rebuild": _rebuild,
        "export": _export,
    }[args.replay_command]
    try:
        with _quiet_broken_pipe(), translate_errors():
            return handler(url, args, settings)
    except StoreError as exc:
        raise ReplayError(_one_line(exc)) from exc


def _one_line(exc: StoreError) -> str:
    """Driver messages span lines (LINE 1: …, a caret); the CLI prints one."""
    text = str(exc).splitlines()[0]
    if isinstance(exc.__cause__, psycopg.errors.UndefinedTable):
        text += " (is the database migrated? run: agentlane migrate)"
    return text


@contextlib.contextmanager
def _quiet_broken_pipe() -> Iterator[None]:
    """``agentlane replay export | head`` is not an error."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _console() -> Console:
    if sys.stdout.isatty():
        return Console()
    return Console(width=200, no_color=True, highlight=False)


def _session(url: str, args: argparse.Namespace, settings: Settings) -> int:
    where = EventFilter(
        tenant_id=args.tenant, session_id=args.session, until_event_id=args.until
    )
    with snapshot(url) as conn:
        events = _events(conn, where)
        first = next(events, None)
        if first is None:
            raise NothingToReplay(f"session {args.session!r} of tenant {args.tenant!r}")
        steps = timeline.steps(_chain(first, events))
        if args.json:
            timeline.write_ndjson(steps, sys.stdout)
            return 0
        console = _console()
        title = f"session {args.tenant}/{args.session}"
        if args.until is not None:
            title += f" until event {args.until}"
        last = timeline.render_table(title, steps, console)
        if last is not None:
            timeline.render_state("session state after the last event", last.session.to_json(), console)
    return 0


def _run(url: str, args: argparse.Namespace, settings: Settings) -> int:
    where = EventFilter(tenant_id=args.tenant, execution_id=args.execution)
    with snapshot(url) as conn:
        events = list(_events(conn, where, order="seq"))
    if not events:
        raise NothingToReplay(f"run {args.execution!r}")
    steps = list(timeline.steps(events))
    state = steps[-1].run
    if args.json:
        body: dict[str, Any] = {
            "executionId": args.execution,
            "state": state.to_json() if state is not None else None,
            "events": [event.to_json() for event in events],
        }
        sys.stdout.write(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n")
        return 0
    console = _console()
    first = events[0]
    timeline.render_table(
        f"run {args.execution} (session {first.tenant_id}/{first.session_id})", steps, console
    )
    if state is not None:
        timeline.render_state("final state", state.to_json(), console)
    return 0


def _events(
    conn: Any, where: EventFilter, *, order: str = "tenant_id, session_id, seq"
) -> Iterator[Any]:
    clause, params = where.where()
    query = f"SELECT {EVENT_COLUMNS} FROM agent_events{clause.as_string(conn)} ORDER BY {order}"
    for row in stream_rows(conn, query, params, name="replay_timeline"):
        yield row_to_event(row)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _verify(url: str, args: argparse.Namespace, settings: Settings) -> int:
    where = EventFilter(tenant_id=args.tenant)
    show = wanted()
    with snapshot(url) as conn:
        models = discover(conn, where)
        total = count_events(conn, where) if show else None

        def report(mismatch: Mismatch) -> None:
            if args.json:
                line = json.dumps({"mismatch": mismatch.describe(), **_fields(mismatch)})
            else:
                line = f"MISMATCH {mismatch.describe()}"
            sys.stdout.write(line + "\n")

        with progress("verifying", total, enabled=show) as advance:
            summary = verify(
                conn, where, checks=models.checks, projected_sql=models.projected_sql,
                projected_params=models.projected_params, report=report, advance=advance,
            )
    scope = f"tenant {args.tenant}" if args.tenant else "all tenants"
    if args.json:
        sys.stdout.write(
            json.dumps(
                {
                    "ok": summary.mismatches == 0, "scope": scope, "events": summary.events,
                    "streams": summary.streams, "runs": summary.runs,
                    "mismatches": summary.mismatches, "notes": models.notes,
                }
            ) + "\n"
        )
    else:
        for note in models.notes:
            sys.stdout.write(f"note: {note}\n")
        verdict = "OK" if summary.mismatches == 0 else f"{summary.mismatches} MISMATCHES"
        sys.stdout.write(
            f"{verdict}: {summary.events} events, {summary.streams} streams, {summary.runs} runs "
            f"({scope})\n"
        )
    return 0 if summary.mismatches == 0 else 1


def _fields(mismatch: Mismatch) -> dict[str, Any]:
    return {
        "tenantId": mismatch.tenant_id,
        "sessionId": mismatch.session_id,
        "seq": mismatch.seq,
        "eventId": mismatch.event_id,
        "what": mismatch.what,
    }


def _rebuild(url: str, args: argparse.Namespace, settings: Settings) -> int:
    result = rebuild(url)
    sys.stdout.write(f"rebuilt the read models from {result.events} events\n")
    return 0


def _export(url: str, args: argparse.Namespace, settings: Settings) -> int:
    where = EventFilter(tenant_id=args.tenant, session_id=args.session, since=args.since)
    show = wanted()
    with snapshot(url) as conn:
        total = count_events(conn, where) if show else None
        with progress("exporting", total, enabled=show) as advance:
            export_mod.export(conn, where, sys.stdout, advance=advance)
    return 0
