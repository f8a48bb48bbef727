"""``replay export``: the Event JSON of matching events, one compact line each, streamed.

Each line is ``json.dumps(StoredEvent.to_json())`` with the HTTP API's settings (compact, UTF-8), so
a line is byte for byte what the API returns for that event. Rows come through a server-side cursor
``itersize`` at a time: memory does not grow with the export.

With ``--inline-blobs`` each value an event keeps in the blob store is fetched, checked against its
reference and written in its place (the ``…Ref`` goes): a line then reads as if the value had been
inline, which is what a reader wants and no longer what the hash chain covers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from agentlane.records import StoredEvent
from agentlane.replay.progress import Advance
from agentlane.store.audit import EventFilter, Snapshot, events


def event_line(event_json: dict[str, Any]) -> str:
    """One NDJSON line: the encoding of Starlette's JSONResponse, plus a newline."""
    return json.dumps(event_json, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"


Resolve = Callable[[StoredEvent], StoredEvent]


def export_lines(
    conn: Snapshot, where: EventFilter, *, resolve: Resolve | None = None
) -> Iterator[str]:
    """The lines of every event matching ``where``, in (tenant, session, seq) order
    (``resolve``: what each event becomes first, e.g. its blobs inlined)."""
    for event in events(conn, where):
        yield event_line((event if resolve is None else resolve(event)).to_json())


def export(
    conn: Snapshot, where: EventFilter, out: IO[str], *, advance: Advance,
    resolve: Resolve | None = None,
) -> int:
    """Write the lines to ``out``; returns how many events were written."""
    written = 0
    for line in export_lines(conn, where, resolve=resolve):
        out.write(line)
        written += 1
        if written % 5000 == 0:
            advance(5000)
    advance(written % 5000)
    return written
