"""Tracing on the write path, through the real store: each event keeps the traceparent of the span
that appended it, a grouped transaction links to every caller's span, and the hash chain does
not depend on the trace context. Plus the configuration's refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentlane import cli, telemetry
from agentlane.db import Database
from agentlane.errors import ConfigError
from agentlane.records import NewEvent
from agentlane.store import EventStore, event_hash_input
from tests.conftest import TEST_SHARDS


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_provider(provider)
    yield exporter
    telemetry.use_provider(None)


def _ids(traceparent: str) -> tuple[str, str]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return trace_id, span_id


def token(session: str, index: int) -> NewEvent:
    return NewEvent("t1", session, "Token", {"text": f"tok{index}", "index": index})


async def test_each_event_keeps_the_span_that_appended_it(
    db: Database, spans: InMemorySpanExporter
) -> None:
    store = EventStore(db, shards=TEST_SHARDS, max_in_flight=1)

    async def caller(index: int) -> tuple[str, str | None]:
        with telemetry.span("test", f"caller {index}") as span:
            assert span is not None
            trace_id = trace.format_trace_id(span.get_span_context().trace_id)
            written = await store.append(token(f"s{index % 3}", index))
            return trace_id, written.event.trace

    # One writer in flight: most callers are grouped into shared transactions.
    results = await asyncio.gather(*(caller(i) for i in range(12)))
    assert store.committer.groups < 12

    appends = {
        trace.format_span_id(s.context.span_id): s
        for s in spans.get_finished_spans() if s.name == "append"
    }
    for trace_id, traceparent in results:
        assert traceparent is not None
        stored_trace, stored_span = _ids(traceparent)
        # The event names its caller's trace, through the caller's own append span.
        assert stored_trace == trace_id
        assert stored_span in appends
    # What the store wrote is what it read back.
    for s in range(3):
        for event in await store.read_session("t1", f"s{s}"):
            assert event.trace == results[event.data["index"]][1]

    # A grouped transaction is a trace of its own, linked to the append span of every caller.
    groups = [s for s in spans.get_finished_spans() if s.name == "group commit"]
    assert groups, "no grouped transaction"
    linked = [trace.format_span_id(link.context.span_id) for g in groups for link in g.links]
    assert set(linked) <= set(appends) and len(set(linked)) == len(linked)
    # Every caller's transaction was either its own (in its own task, under its own span) or a
    # group's, which links to it.
    direct = store.committer.groups - len(groups)
    assert len(linked) == 12 - direct
    assert all(group.parent is None for group in groups)


async def test_the_hash_chain_ignores_the_trace_context(
    db: Database, database_url: str, spans: InMemorySpanExporter
) -> None:
    store = EventStore(db, shards=TEST_SHARDS)
    with telemetry.span("test", "traced"):
        traced = (await store.append(token("chain", 0))).event
    telemetry.use_provider(None)
    plain = (await store.append(token("chain", 1))).event
    assert traced.trace is not None and plain.trace is None
    assert "traceparent" not in event_hash_input(traced)
    assert await store.check_chain("t1", "chain") == []
    # The same history with another trace context still verifies: it is not evidence.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE agent_events DISABLE TRIGGER agent_events_no_update_delete")
        try:
            conn.execute(
                "UPDATE agent_events SET trace_context = %s WHERE event_id = %s",
                ("00-" + "1" * 32 + "-" + "2" * 16 + "-01", traced.event_id),
            )
        finally:
            conn.execute("ALTER TABLE agent_events ENABLE TRIGGER agent_events_no_update_delete")
    assert await store.check_chain("t1", "chain") == []


def test_tracing_is_off_unless_an_exporter_is_named() -> None:
    assert telemetry.configure_tracing("runner", {}) is None
    assert telemetry.configure_tracing("runner", {"OTEL_TRACES_EXPORTER": "none"}) is None
    assert not telemetry.enabled()
    assert telemetry.traceparent() is None
    with telemetry.span("test", "nothing") as span:
        assert span is None


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "unknown exporter jaeger"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
         "'http/json' is not supported"),
    ],
)
def test_a_bad_tracing_setting_is_refused(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        telemetry.configure_tracing("runner", environ)
    assert not telemetry.enabled()


def test_a_service_with_a_bad_exporter_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    assert cli.main(["runner"]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "agentlane runner: OTEL_TRACES_EXPORTER: unknown exporter zipkin "
        "(one or more of otlp, console, gcp_trace, none)"
    )
