"""The audit's reads of the log (``agentlane replay``): one snapshot, server-side cursors, sync.

Everything an audit reads comes from one read-only REPEATABLE READ transaction, so events, stream
heads and read models are compared at the same instant even while the system writes; parallel
workers join the same snapshot (``pg_export_snapshot``, as ``pg_dump --jobs`` does). Rows arrive
through named (server-side) cursors ``itersize`` at a time: memory does not grow with the table.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from agentlane.blobs.refs import OFFLOADED_FIELDS, BlobRef, refs_in
from agentlane.db import translate_errors
from agentlane.records import StoredEvent
from agentlane.store.recorder import EVENT_COLUMNS, row_to_event

#: Rows fetched per round trip of a server-side cursor.
ITERSIZE = 5000

#: The order every streaming read uses: a stream's rows are contiguous and in ``seq`` order.
STREAM_ORDER = "tenant_id, session_id, seq"

Snapshot = psycopg.Connection[Any]


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events an audit looks at; ``None`` means no restriction."""

    tenant_id: str | None = None
    session_id: str | None = None
    execution_id: str | None = None
    since: datetime | None = None
    until_event_id: int | None = None
    #: A range of streams, ``from_stream <= (tenant, session) < to_stream`` (a worker's share).
    from_stream: tuple[str, str] | None = None
    to_stream: tuple[str, str] | None = None

    def where(self) -> tuple[sql.Composed, list[Any]]:
        """A ``WHERE`` clause (or nothing) and its parameters."""
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        for column, value, operator in (
            ("tenant_id", self.tenant_id, "="),
            ("session_id", self.session_id, "="),
            ("execution_id", self.execution_id, "="),
            ("created_at", self.since, ">="),
            ("event_id", self.until_event_id, "<="),
        ):
            if value is not None:
                clauses.append(
                    sql.SQL("{} {} %s").format(sql.Identifier(column), sql.SQL(operator))
                )
                params.append(value)
        for bound, operator in ((self.from_stream, ">="), (self.to_stream, "<")):
            if bound is not None:
                clauses.append(
                    sql.SQL("(tenant_id, session_id) {} (%s, %s)").format(sql.SQL(operator))
                )
                params.extend(bound)
        if not clauses:
            return sql.Composed([]), params
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses), params


# --- the snapshot -------------------------------------------------------------------------------


@contextlib.contextmanager
def snapshot(database_url: str, *, join: str | None = None) -> Iterator[Snapshot]:
    """A connection inside one read-only REPEATABLE READ transaction; with ``join`` (an id from
    :func:`export_snapshot`), inside that transaction's snapshot."""
    name = "agentlane-replay" if join is None else "agentlane-replay-worker"
    with translate_errors():
        conn = psycopg.connect(database_url, application_name=name)
    with conn:
        with translate_errors():
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
        # Every statement run on the snapshot, here and by the caller, fails as a store error.
        with translate_errors(), conn.transaction():
            if join is not None:
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(join)))
            # A read-only snapshot takes no transaction id, so it does not hold back the gap-safe
            # tail's horizon; the database-wide idle limit (ddl/0021) is for writers. Waiting on
            # worker processes (parallel verify) leaves this one idle for minutes.
            conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            yield conn


def export_snapshot(conn: Snapshot) -> str:
    """The id other connections join this snapshot by (:func:`snapshot` ``join=``)."""
    row = conn.execute("SELECT pg_export_snapshot()").fetchone()
    assert row is not None
    return str(row[0])


def stream_rows(
    conn: Snapshot,
    query: sql.Composed | str,
    params: Sequence[Any] = (),
    *,
    name: str = "replay",
    itersize: int = ITERSIZE,
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``query`` through a server-side cursor (binary: no text parsing of bytea/jsonb).
    For the audit readers of every table owner."""
    with conn.cursor(name=name, row_factory=tuple_row, binary=True) as cursor:
        cursor.itersize = itersize
        cursor.execute(query, params)
        yield from cursor


def _events_query(
    columns: str, where: EventFilter, *, order: str = STREAM_ORDER,
    column_params: Iterable[Any] = (),
) -> tuple[sql.Composed, list[Any]]:
    clause, params = where.where()
    query = (
        sql.SQL("SELECT ")
        + sql.SQL(columns)
        + sql.SQL(" FROM agent_events")
        + clause
        + sql.SQL(" ORDER BY " + order)
    )
    return query, [*column_params, *params]


# --- events -------------------------------------------------------------------------------------


def events(
    conn: Snapshot, where: EventFilter, *, by_seq_only: bool = False
) -> Iterator[StoredEvent]:
    """The events matching ``where`` in (tenant, session, seq) order (``by_seq_only``: in ``seq``
    order, for one run)."""
    query, params = _events_query(
        EVENT_COLUMNS, where, order="seq" if by_seq_only else STREAM_ORDER
    )
    for row in stream_rows(conn, query, params, name="replay_events"):
        yield row_to_event(row)


@dataclass(frozen=True, slots=True)
class BlobReference:
    """An event's reference to a blob (``agentlane.blobs``), as the event itself holds it."""

    tenant_id: str
    session_id: str
    seq: int
    event_id: int
    field: str
    ref: BlobRef


def blob_references(conn: Snapshot, where: EventFilter) -> Iterator[BlobReference]:
    """Every blob reference of the events matching ``where``, read from the events (the log is
    the authority; ``agent_event_blobs`` is its index), in stream order."""
    fields = sorted({field for group in OFFLOADED_FIELDS.values() for field in group})
    clause, params = where.where()
    has_ref = sql.SQL(" OR ").join(
        sql.SQL("payload ? {}").format(sql.Literal(field + "Ref")) for field in fields
    )
    query = (
        sql.SQL("SELECT tenant_id, session_id, seq, event_id, event_type, payload FROM (")
        + sql.SQL("SELECT * FROM agent_events") + clause
        + sql.SQL(") AS e WHERE event_type = ANY(%s) AND (") + has_ref
        + sql.SQL(") ORDER BY " + STREAM_ORDER)
    )
    rows = stream_rows(conn, query, [*params, sorted(OFFLOADED_FIELDS)], name="replay_blobs")
    for tenant, session, seq, event_id, event_type, payload in rows:
        for field, ref in refs_in(event_type, payload):
            yield BlobReference(tenant, session, seq, event_id, field, ref)


@dataclass(frozen=True, slots=True)
class ForkLink:
    """A fork's first event and what the parent's event at its cut is now (None: gone)."""

    tenant_id: str
    session_id: str
    event_id: int
    parent_session_id: str
    at_event_id: int
    at_seq: int
    parent_hash: str
    #: The parent's event ``at_event_id`` as stored now: its seq and chain hash.
    found_seq: int | None
    found_hash: bytes | None


def fork_links(conn: Snapshot, where: EventFilter) -> Iterator[ForkLink]:
    """Every ``SessionForked`` matching ``where``, with the parent's event at its cut."""
    clause, params = where.where()
    query = (
        sql.SQL(
            "SELECT f.tenant_id, f.session_id, f.event_id, f.payload ->> 'parentSessionId', "
            "(f.payload ->> 'atEventId')::bigint, (f.payload ->> 'atSeq')::bigint, "
            "f.payload ->> 'parentHash', p.seq, p.hash FROM ("
        )
        + sql.SQL("SELECT * FROM agent_events") + clause
        + sql.SQL(
            ") AS f LEFT JOIN agent_events p ON p.tenant_id = f.tenant_id "
            "AND p.session_id = f.payload ->> 'parentSessionId' "
            "AND p.event_id = (f.payload ->> 'atEventId')::bigint "
            "WHERE f.event_type = 'SessionForked' ORDER BY f.tenant_id, f.session_id"
        )
    )
    for tenant, session, event_id, parent, at_event, at_seq, parent_hash, seq, found in (
        stream_rows(conn, query, params, name="replay_forks")
    ):
        yield ForkLink(
            tenant, session, event_id, parent, at_event, at_seq, parent_hash, seq,
            None if found is None else bytes(found),
        )


def referenced_blobs(conn: Snapshot) -> set[str]:
    """The SHA-256 of every blob some event references (``agent_event_blobs``)."""
    return {
        str(row[0])
        for row in stream_rows(conn, "SELECT DISTINCT sha256 FROM agent_event_blobs",
                               name="referenced_blobs")
    }


def count_events(conn: Snapshot, where: EventFilter) -> int:
    """How many events match (for a progress bar's total)."""
    clause, params = where.where()
    row = conn.execute(sql.SQL("SELECT count(*) FROM agent_events") + clause, params).fetchone()
    return int(row[0]) if row else 0


def estimated_events(conn: Snapshot) -> float:
    """The planner's estimate of the table's size (cheap: no scan)."""
    row = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = 'agent_events'::regclass"
    ).fetchone()
    return float(row[0]) if row else 0.0


def verify_rows(
    conn: Snapshot, where: EventFilter, *, applied: str = "true",
    applied_params: Iterable[Any] = (),
) -> Iterator[tuple[Any, ...]]:
    """What ``replay verify`` reads of each event, in stream order: ``event_id, seq, tenant_id,
    session_id, execution_id, event_type, payload (jsonb text), created_at, prev_hash, hash,
    applied`` — ``applied`` is :func:`applied_through`'s expression (or true)."""
    query, params = _events_query(
        "event_id, seq, tenant_id, session_id, execution_id, event_type, payload::text, "
        f"created_at, prev_hash, hash, {applied}",
        where,
        column_params=applied_params,
    )
    yield from stream_rows(conn, query, params, name="replay_verify")


def applied_through(conn: Snapshot, checkpoint: str) -> tuple[str, tuple[Any, ...]] | None:
    """Which events a follower with durable ``checkpoint`` has applied, as a boolean SQL expression
    over an event row for :func:`verify_rows` and its parameters; None when it has applied every
    event (the usual case, and the cheap one).

    A follower that applies each stream strictly in ``seq`` order and fetches a lower ``seq`` it
    has not seen yet (the projector) has applied each stream up to the highest ``seq`` at or
    before its checkpoint.
    """
    row = conn.execute(
        "SELECT tx_id, event_id FROM projector_checkpoints WHERE name = %s", (checkpoint,)
    ).fetchone()
    position = (str(row[0]), int(row[1])) if row else ("0", 0)
    behind = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM agent_events "
        "WHERE (tx_id, event_id) > (%s::text::xid8, %s))",
        position,
    ).fetchone()
    if not behind or not behind[0]:
        return None
    return (
        "seq <= coalesce(max(seq) FILTER (WHERE (tx_id, event_id) <= (%s::text::xid8, %s)) "
        "OVER (PARTITION BY tenant_id, session_id), 0)",
        position,
    )


def has_checkpoints(conn: Snapshot) -> bool:
    """Whether this database keeps follower checkpoints at all."""
    row = conn.execute("SELECT to_regclass('projector_checkpoints') IS NOT NULL").fetchone()
    return bool(row and row[0])


# --- stream heads -------------------------------------------------------------------------------


def heads(
    conn: Snapshot, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, bytes]]:
    """``(last_seq, last_hash)`` of each stream of ``keys`` that has a head."""
    rows = conn.execute(
        "SELECT h.tenant_id, h.session_id, h.last_seq, h.last_hash "
        "FROM unnest(%s::text[], %s::text[]) AS k(tenant_id, session_id) "
        "JOIN agent_stream_heads h USING (tenant_id, session_id)",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()
    return {(row[0], row[1]): (int(row[2]), bytes(row[3])) for row in rows}


def chain_heads(conn: Snapshot) -> Iterator[tuple[str, str, int, int, bytes]]:
    """Every stream's last event as the events themselves say (never the stream-head table, which
    the app role may write): ``tenant_id, session_id, seq, event_id, hash``, in stream order."""
    query = (
        "SELECT DISTINCT ON (tenant_id, session_id) tenant_id, session_id, seq, event_id, hash "
        "FROM agent_events ORDER BY tenant_id, session_id, seq DESC"
    )
    for tenant, session, seq, event_id, digest in stream_rows(conn, query, name="replay_chain"):
        yield str(tenant), str(session), int(seq), int(event_id), bytes(digest)


def log_totals(conn: Snapshot) -> tuple[int, int]:
    """How many events there are, and the highest event id (0 when none)."""
    row = conn.execute("SELECT count(*), coalesce(max(event_id), 0) FROM agent_events").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def events_at(
    conn: Snapshot, keys: Sequence[tuple[str, str, int]]
) -> list[tuple[int, bytes] | None]:
    """For each ``(tenant_id, session_id, seq)``, that event's ``(event_id, hash)``, or None
    where there is no such event; in the order of ``keys``."""
    rows = conn.execute(
        "SELECT a.i, e.event_id, e.hash FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
        "WITH ORDINALITY AS a(tenant_id, session_id, seq, i) "
        "LEFT JOIN agent_events e USING (tenant_id, session_id, seq)",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
    ).fetchall()
    found: list[tuple[int, bytes] | None] = [None] * len(keys)
    for index, event_id, digest in rows:
        if event_id is not None:
            found[int(index) - 1] = (int(event_id), bytes(digest))
    return found


def orphan_heads(conn: Snapshot, where: EventFilter) -> Iterator[tuple[str, str, int]]:
    """Stream heads (of ``where``'s tenant) that no event of their stream backs."""
    query = (
        "SELECT h.tenant_id, h.session_id, h.last_seq FROM agent_stream_heads h "
        "WHERE NOT EXISTS (SELECT 1 FROM agent_events e "
        "WHERE e.tenant_id = h.tenant_id AND e.session_id = h.session_id)"
    )
    params: list[Any] = []
    if where.tenant_id is not None:
        query += " AND h.tenant_id = %s"
        params.append(where.tenant_id)
    for tenant, session, last_seq in stream_rows(conn, query, params, name="replay_orphan_heads"):
        yield str(tenant), str(session), int(last_seq)


def partitions(conn: Snapshot, where: EventFilter, jobs: int) -> list[EventFilter]:
    """``where`` split into at most ``jobs`` contiguous, disjoint, covering stream ranges, each
    with about as many events (a head's ``last_seq`` counts its stream's events), so one long
    stream does not leave the other workers idle. The heads only balance the split: the ranges
    cover every key whatever the heads say."""
    scope = sql.SQL(" WHERE tenant_id = %s") if where.tenant_id is not None else sql.SQL("")
    params: list[Any] = [where.tenant_id] if where.tenant_id is not None else []
    # A stream starts share k when the events before it reach k/jobs of the whole.
    rows = conn.execute(
        sql.SQL(
            "SELECT DISTINCT ON (share) tenant_id, session_id FROM ("
            "SELECT tenant_id, session_id, floor((sum(last_seq) OVER (ORDER BY tenant_id, "
            "session_id) - last_seq) * %s / nullif(sum(last_seq) OVER (), 0)) AS share "
            "FROM agent_stream_heads"
        )
        + scope
        + sql.SQL(") heads WHERE share > 0 ORDER BY share, tenant_id, session_id"),
        [jobs, *params],
    ).fetchall()
    bounds = [(row[0], row[1]) for row in rows]
    edges: list[tuple[str, str] | None] = [None, *bounds, None]
    return [
        replace(where, from_stream=low, to_stream=high)
        for low, high in itertools.pairwise(edges)
    ]
