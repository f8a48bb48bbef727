"""``agentlane replay``: the audit CLI (timelines, verify, rebuild, export, anchor).

Exit codes: 0 done (verify: everything agrees), 1 a failed check or an expected error (one line on
stderr), 2 bad arguments. Output for people is a rich table on a terminal; ``--json`` (and export)
are for machines. Progress bars go to stderr and only when it is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console

from agentlane.blobs import BlobError, Blobs, has_refs
from agentlane.cli.operator_db import add_database_option, database_url, operator_blobs
from agentlane.commands import Commands
from agentlane.db import open_database
from agentlane.errors import StoreError
from agentlane.files import write_atomically
from agentlane.leases import verify_shard_count
from agentlane.records import StoredEvent
from agentlane.replay import anchor as anchor_mod
from agentlane.replay import export as export_mod
from agentlane.replay import gcs, timeline
from agentlane.replay.blob_checks import check_blobs
from agentlane.replay.errors import AnchorError, NothingToReplay, ReplayError
from agentlane.replay.fork_checks import check_forks
from agentlane.replay.parallel import run_verify
from agentlane.replay.progress import progress, wanted
from agentlane.replay.verify import Mismatch
from agentlane.run_index import RunIndex
from agentlane.settings import Settings
from agentlane.store import EventStore
from agentlane.store.audit import EventFilter, count_events, events, snapshot
from agentlane.transcript import transcript_of


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


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 64:
        raise argparse.ArgumentTypeError(f"invalid job count {text!r}: 0 (auto) to 64")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_database_option(parser)
    commands = parser.add_subparsers(
        dest="replay_command", metavar="SUBCOMMAND", required=True, parser_class=type(parser)
    )

    session = commands.add_parser(
        "session", help="a session's timeline with the state folded after each event",
        description="Re-fold one session from its events, in one snapshot, and print each event "
        "with the run and session state after it; --until stops at an event id (time travel).",
    )
    session.add_argument("session", metavar="SESSION")
    session.add_argument("--tenant", default="default", help="tenant id (default: %(default)s)")
    session.add_argument(
        "--until", type=positive_int, metavar="EVENT_ID",
        help="time travel: stop after this event id",
    )
    session.add_argument(
        "--json", action="store_true", help="NDJSON: one {event, run, session} a line"
    )

    fork = commands.add_parser(
        "fork", help="start a new session whose history is this one's up to an event",
        description="Fork SESSION at EVENT_ID into NEW_SESSION (which must have no events): one "
        "SessionForked event names the parent, the cut and the hash of the parent's event there. "
        "A run started in the fork continues from the parent's state at the cut; the parent is "
        "not touched (POST /sessions/{sessionId}/fork does the same).",
    )
    fork.add_argument("session", metavar="SESSION")
    fork.add_argument("--at", type=positive_int, required=True, metavar="EVENT_ID",
                      help="the parent's event the fork's history ends at")
    fork.add_argument("--new", required=True, metavar="NEW_SESSION", help="the fork's session id")
    fork.add_argument("--tenant", default="default", help="tenant id (default: %(default)s)")

    what = commands.add_parser(
        "what-if", help="one recorded run's model steps again, against another model",
        description="Re-run one recorded run of SESSION against --model (an OpenAI-compatible "
        "endpoint as the runners reach it, OPENAI_BASE_URL and the key, or offline), with the "
        "recorded tool results fed back where the calls match (no tool runs), and print the two "
        "side by side: answer, tool calls, model calls, tokens, cost, time. Nothing is written.",
    )
    what.add_argument("session", metavar="SESSION")
    what.add_argument("--run", required=True, metavar="RUN",
                      help="the run: its executionId or its runId")
    what.add_argument("--model", required=True, help="the model to try")
    what.add_argument("--prompt", type=Path, metavar="FILE",
                      help="a system prompt to try instead of the agent's")
    what.add_argument("--tenant", default="default", help="tenant id (default: %(default)s)")
    what.add_argument("--json", action="store_true", help="one JSON object: recorded, whatIf")

    run = commands.add_parser(
        "run", help="one run's journal and final state",
        description="Re-fold one run (an executionId from POST /agents/{sessionId}/runs) from its "
        "session's events and print its journal: model and tool steps, retries, timers, signals.",
    )
    run.add_argument("execution", metavar="EXECUTION_ID")
    run.add_argument("--tenant", help="only this tenant's run")
    run.add_argument("--json", action="store_true", help="one JSON object: state and events")

    check = commands.add_parser(
        "verify",
        help="check hash chains, seq, journal invariants and read models; exit 1 on a mismatch",
        description="In one database snapshot: recompute every stream's SHA-256 hash chain, check "
        "seq has no gap, re-fold every run and check the journal's invariants, and diff the read "
        "models against the re-fold; with a blob store (AGENTLANE_BLOB_STORE, or the dev stack's), "
        "check that every blob an event references is there and hashes to its reference. Exit 0 "
        "only when everything agrees; else every mismatch is printed, naming its stream and event, "
        "and the exit code is 1.",
    )
    check.add_argument("--tenant", help="only this tenant's streams")
    check.add_argument(
        "--json", action="store_true", help="NDJSON: one mismatch a line, then a summary"
    )
    check.add_argument(
        "--jobs", type=_jobs, default=0, metavar="N",
        help="worker processes (default: one per core on large stores, else 1)",
    )
    check.add_argument(
        "--anchor", type=Path, action="append", default=[], metavar="FILE",
        help="also check that history up to this anchor's stream heads is unchanged "
        "(repeatable)",
    )
    check.add_argument(
        "--anchor-key", type=Path, metavar="FILE",
        help="the key the anchors were signed with: an Ed25519 public key (PEM) or the HMAC "
        "secret (default: AGENTLANE_ANCHOR_VERIFY_KEY, else AGENTLANE_ANCHOR_KEY)",
    )

    seal = commands.add_parser(
        "anchor", help="a signed checkpoint of every stream head, to keep outside the database",
        description="Read every stream's head (last seq, event id, chain hash) from the events in "
        "one snapshot and write them, signed, as an anchor file. Later, `replay verify --anchor "
        "FILE` proves history up to those heads is unchanged, even against someone who rewrote "
        "the table and recomputed its hash chains.",
    )
    seal.add_argument(
        "--out", metavar="FILE|gs://BUCKET/PREFIX",
        help="write the anchor to FILE (whole or not at all), or create a new object "
        "PREFIX/YYYY/MM/DD/anchor-TIME.ndjson in a Cloud Storage bucket; default: stdout",
    )
    seal.add_argument(
        "--key-file", type=Path, metavar="FILE",
        help="the signing key: an Ed25519 private key (PEM) or an HMAC secret of 32+ bytes "
        "(default: AGENTLANE_ANCHOR_KEY)",
    )

    commands.add_parser(
        "rebuild",
        help="recreate everything but the events from them: stream heads, run index, read models",
        description="Recreate every table derived from the events (stream heads, the runners' run "
        "index, the read models) by re-folding the log. Safe while the system runs; the events "
        "themselves are never touched.",
    )

    dump = commands.add_parser(
        "export", help="NDJSON of the Event JSON, one event a line",
        description="Write the matching events to stdout as NDJSON, one snapshot, in (tenant, "
        "session, seq) order; each line is byte for byte the HTTP API's JSON of that event.",
    )
    dump.add_argument("--tenant", help="only this tenant")
    dump.add_argument("--session", help="only this session id")
    dump.add_argument(
        "--since", type=parse_time, metavar="TIME",
        help="only events created at or after TIME (RFC 3339; UTC when no offset)",
    )
    dump.add_argument(
        "--inline-blobs", action="store_true",
        help="write each value an event keeps in the blob store in place of its reference "
        "(fetched and checked against it; AGENTLANE_BLOB_STORE); the chain covers the references",
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    url = database_url(args, settings, command="replay")
    handler = {
        "session": _session,
        "fork": _fork,
        "what-if": _what_if,
        "run": _run,
        "verify": _verify,
        "rebuild": _rebuild,
        "export": _export,
        "anchor": _anchor,
    }[args.replay_command]
    try:
        code = handler(url, args, settings)
        sys.stdout.flush()
    except BrokenPipeError:
        # `agentlane replay export | head` is not an error. Python would report the closed pipe
        # again when it flushes stdout at exit: point stdout at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except StoreError as exc:
        raise ReplayError(_one_line(exc)) from exc
    return code


def _one_line(exc: StoreError) -> str:
    """The CLI prints one line (the store's messages say what to do, e.g. migrate)."""
    return str(exc).splitlines()[0]


def _console() -> Console:
    if sys.stdout.isatty():
        return Console()
    return Console(width=200, no_color=True, highlight=False)


def _session(url: str, args: argparse.Namespace, settings: Settings) -> int:
    where = EventFilter(
        tenant_id=args.tenant, session_id=args.session, until_event_id=args.until
    )
    with snapshot(url) as conn:
        found = events(conn, where)
        first = next(found, None)
        if first is None:
            raise NothingToReplay(f"session {args.session!r} of tenant {args.tenant!r}")
        steps = timeline.steps(itertools.chain([first], found))
        if args.json:
            timeline.write_ndjson(steps, sys.stdout)
            return 0
        console = _console()
        title = f"session {args.tenant}/{args.session}"
        if args.until is not None:
            title += f" until event {args.until}"
        last = timeline.render_table(title, steps, console)
        if last is not None:
            timeline.render_state(
                "session state after the last event", last.session.to_json(), console
            )
    return 0


def _fork(url: str, args: argparse.Namespace, settings: Settings) -> int:
    async def fork() -> StoredEvent:
        async with open_database(url, name="replay-fork", min_size=1, max_size=2) as db:
            await verify_shard_count(db, settings.shards)
            store = EventStore(db, shards=settings.shards, blobs=operator_blobs(args, settings))
            return await Commands(store, RunIndex(db)).fork_session(
                tenant_id=args.tenant, session_id=args.session, at_event_id=args.at,
                new_session_id=args.new,
            )

    event = asyncio.run(fork())
    data = event.data
    print(f"forked {args.tenant}/{args.session} at event {data['atEventId']} (seq "
          f"{data['atSeq']}) into {args.tenant}/{args.new}: event {event.event_id}")
    return 0


def _what_if(url: str, args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: only this subcommand needs the agent and a model client.
    from runners.agent import agent_tools, model_client
    from runners.agent.what_if import recorded_side, what_if
    from runners.agent.workflow import HISTORY_RUNS
    from runners.workflows import agent_options

    prompt = None
    if args.prompt is not None:
        try:
            prompt = args.prompt.read_text()
        except OSError as exc:
            raise ReplayError(f"--prompt: cannot read {args.prompt}: {exc.strerror}") from None
    with snapshot(url) as conn:
        session = list(events(conn, EventFilter(tenant_id=args.tenant, session_id=args.session),
                              by_seq_only=True))
    accepted = next(
        (e for e in session if e.type == "RunAccepted"
         and args.run in (e.execution_id, e.data.get("runId"))), None,
    )
    if accepted is None:
        raise NothingToReplay(f"run {args.run!r} in session {args.tenant}/{args.session}")
    run = [e for e in session if e.execution_id == accepted.execution_id]
    tried = settings.model_copy(update={"model_choice": args.model})

    async def go() -> tuple[Any, Any]:
        async with open_database(url, name="replay-what-if", min_size=1, max_size=1) as db:
            store = EventStore(db, shards=settings.shards, blobs=operator_blobs(args, settings))
            exchanges = await store.completed_exchanges(
                args.tenant, args.session, before_seq=accepted.seq, limit=HISTORY_RUNS
            )
            recording = await store.resolve(run)
            # The tools and model options a runner of these settings gives the agent.
            options = agent_options(tried)
            tools = agent_tools(store, options)
            model = model_client(tried, options)
            kwargs = {"system_prompt": prompt} if prompt is not None else {}
            return recorded_side(recording), await what_if(
                recording, exchanges, model, tools.schemas(), model_name=tried.model, **kwargs
            )

    recorded, tried_side = asyncio.run(go())
    if args.json:
        body = {"executionId": accepted.execution_id, "recorded": recorded.to_json(),
                "whatIf": tried_side.to_json()}
        sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
        return 0
    timeline.render_comparison(
        f"run {accepted.execution_id}: recorded vs what-if", recorded.to_json(),
        tried_side.to_json(), _console(),
    )
    return 0


def _run(url: str, args: argparse.Namespace, settings: Settings) -> int:
    where = EventFilter(tenant_id=args.tenant, execution_id=args.execution)
    with snapshot(url) as conn:
        history = list(events(conn, where, by_seq_only=True))
    if not history:
        raise NothingToReplay(f"run {args.execution!r}")
    steps = list(timeline.steps(history))
    state = steps[-1].run
    # What a reader of the run was shown, by the rule every client uses (docs/contract.md).
    transcript = transcript_of(event.to_json() for event in history)
    if args.json:
        body: dict[str, Any] = {
            "executionId": args.execution,
            "state": state.to_json() if state is not None else None,
            "transcript": transcript.to_json(),
            "events": [event.to_json() for event in history],
        }
        sys.stdout.write(json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n")
        return 0
    console = _console()
    first = history[0]
    timeline.render_table(
        f"run {args.execution} (session {first.tenant_id}/{first.session_id})", steps, console
    )
    if state is not None:
        timeline.render_state("final state", state.to_json(), console)
    timeline.render_state("transcript", transcript.to_json(), console)
    return 0


def _key_text(path: Path | None, *fallbacks: SecretStr | None, what: str) -> str:
    if path is not None:
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorError(f"{what} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    for secret in fallbacks:
        if secret is not None:
            return secret.get_secret_value()
    raise AnchorError(f"no {what}: pass a file or set the environment variable")


def _verify(url: str, args: argparse.Namespace, settings: Settings) -> int:
    where = EventFilter(tenant_id=args.tenant)
    anchored = []
    if args.anchor:
        verifier = anchor_mod.verifier_from(
            _key_text(
                args.anchor_key, settings.anchor_verify_key, settings.anchor_key,
                what="anchor verify key (--anchor-key, AGENTLANE_ANCHOR_VERIFY_KEY)",
            )
        )
        anchored = [anchor_mod.load(path, verifier) for path in args.anchor]

    with progress("verifying", None, enabled=wanted()) as bar:

        def report(mismatch: Mismatch) -> None:
            if args.json:
                bar.write_line(json.dumps({"mismatch": mismatch.describe(), **_fields(mismatch)}))
            else:
                bar.write_line(f"MISMATCH {mismatch.describe()}")

        outcome = run_verify(
            url, where, jobs=args.jobs, report=report, advance=bar.advance,
            total=bar.set_total if bar.enabled else None, anchored=anchored,
        )
        with snapshot(url) as conn:
            links, broken = check_forks(conn, where, report=report)
            outcome.summary.mismatches += broken
            if links:
                outcome.notes.append(f"forks: {links} links to their parents checked")
            blobs = operator_blobs(args, settings)
            if blobs is not None:
                checked = check_blobs(conn, where, blobs, report=report, advance=bar.advance)
                outcome.summary.mismatches += checked.mismatches
                outcome.notes.append(
                    f"blobs: {checked.blobs} checked in {blobs.store.url} "
                    f"({checked.references} references)"
                )
    summary = outcome.summary
    scope = f"tenant {args.tenant}" if args.tenant else "all tenants"
    if args.json:
        sys.stdout.write(
            json.dumps(
                {
                    "ok": summary.mismatches == 0, "scope": scope, "events": summary.events,
                    "streams": summary.streams, "runs": summary.runs,
                    "mismatches": summary.mismatches, "notes": outcome.notes,
                }
            ) + "\n"
        )
    else:
        for note in outcome.notes:
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
    """Everything but the events, recreated from them (DESIGN invariant 1): the stream heads, the
    work index and the read models, each by its owner, each safe while the system runs."""
    # Imported here: the projector brings the Pub/Sub client, which no other audit needs.
    from projector import rebuild_read_models

    async def run() -> str:
        async with open_database(url, name="replay-rebuild", min_size=1, max_size=6) as db:
            # A work index built for another shard count would route runs to the wrong owners.
            await verify_shard_count(db, settings.shards)
            heads = await EventStore(db, shards=settings.shards).rebuild_heads()
            index = await RunIndex(db).rebuild(settings.shards)
            models = await rebuild_read_models(db)
        return (
            f"rebuilt the read models from {models.events} events; "
            f"stream heads: {heads.repaired} repaired, {heads.removed} removed; "
            f"run index: {index.added} added, {index.fixed} fixed, {index.removed} removed\n"
        )

    sys.stdout.write(asyncio.run(run()))
    return 0


def _anchor(url: str, args: argparse.Namespace, settings: Settings) -> int:
    signer = anchor_mod.signer_from(
        _key_text(
            args.key_file, settings.anchor_key, what="anchor key (--key-file, AGENTLANE_ANCHOR_KEY)"
        )
    )
    with snapshot(url) as conn:
        heads, events, through = anchor_mod.take(conn)
    created = datetime.now(UTC)
    content = anchor_mod.render(heads, events, through, signer, created)
    where = ""
    if args.out is None:
        sys.stdout.buffer.write(content)
    elif args.out.startswith("gs://"):
        bucket, prefix = gcs.split(args.out)
        name = f"{prefix}{created:%Y/%m/%d}/anchor-{created:%Y%m%dT%H%M%S%fZ}.ndjson"
        where = " to " + gcs.upload(
            bucket, name, content, emulator=settings.storage_emulator_host
        )
    else:
        try:
            write_atomically(Path(args.out), content)
        except OSError as exc:
            raise AnchorError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        where = f" to {args.out}"
    sys.stderr.write(
        f"anchored {len(heads)} streams, {events} events through event {through}{where} "
        f"(key {signer.key_id})\n"
    )
    return 0


def _blob_inliner(args: argparse.Namespace, settings: Settings) -> export_mod.Resolve:
    """Each event with the values of its blobs in place of their references (one event loop
    for the whole export; events without references pass straight through)."""
    blobs = _require_blobs(args, settings)
    loop = asyncio.new_event_loop()

    def resolve(event: StoredEvent) -> StoredEvent:
        if not has_refs(event):
            return event
        try:
            (resolved,) = loop.run_until_complete(blobs.resolve([event]))
        except BlobError as exc:
            raise ReplayError(f"event {event.event_id}: {exc}") from None
        return resolved

    return resolve


def _require_blobs(args: argparse.Namespace, settings: Settings) -> Blobs:
    blobs = operator_blobs(args, settings)
    if blobs is None:
        raise ReplayError("no blob store: set AGENTLANE_BLOB_STORE (gs://BUCKET/PREFIX or a DIR)")
    return blobs


def _export(url: str, args: argparse.Namespace, settings: Settings) -> int:
    where = EventFilter(tenant_id=args.tenant, session_id=args.session, since=args.since)
    with snapshot(url) as conn, progress("exporting", None, enabled=wanted()) as bar:
        if bar.enabled:
            bar.set_total(count_events(conn, where))
        resolve = _blob_inliner(args, settings) if args.inline_blobs else None
        export_mod.export(conn, where, sys.stdout, advance=bar.advance, resolve=resolve)
    return 0
