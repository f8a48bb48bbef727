"""Tracing with OpenTelemetry, configured by the standard ``OTEL_*`` variables; off unless asked.

``OTEL_TRACES_EXPORTER`` names the exporters (comma-separated): ``otlp`` (over
``OTEL_EXPORTER_OTLP_PROTOCOL`` ``grpc``, the default, or ``http/protobuf``, to
``OTEL_EXPORTER_OTLP_ENDPOINT``), ``console`` (spans on stdout), ``gcp_trace`` (Google Cloud
Trace, in ``GOOGLE_CLOUD_PROJECT``), or ``none``, the default. Sampling is the SDK's
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``; parent-based always-on by default), and so
is batching (``OTEL_BSP_*``). ``OTEL_SERVICE_NAME`` overrides ``agentlane-<component>``.

When tracing is on, psycopg and the openai SDK are instrumented by their maintained packages, the
HTTP apps by the ASGI middleware (:mod:`agentlane.service`), Pub/Sub by its client's own tracing,
and our code opens spans through :func:`span`. Every event carries the W3C ``traceparent`` of the
span that appended it (docs/contract.md), which is how the runner's spans join the trace of the
request that started the run, and the projector's and the gateway's join the trace of the write.

When tracing is off, :func:`span` is a shared no-op context manager and :func:`traceparent` is
None: the hot paths pay one boolean test.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agentlane.errors import ConfigError

logger = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "gcp_trace", "none")
#: The variables of docs/contract.md's environment table that tracing reads (itself or through the
#: SDK, which also honours the rest of the standard ``OTEL_*`` set).
ENV_VARS = frozenset({
    "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
})
_PROPAGATOR = TraceContextTextMapPropagator()
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()
_provider: TracerProvider | None = None


def enabled() -> bool:
    """True once :func:`configure_tracing` installed an exporting provider in this process."""
    return _provider is not None


def configure_tracing(
    component: str, environ: Mapping[str, str] = os.environ
) -> TracerProvider | None:
    """Install the process's tracer provider from ``environ``; None (and nothing installed) when
    ``OTEL_TRACES_EXPORTER`` is unset or ``none``. Raises ConfigError for an unknown exporter."""
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "none").split(",") if n.strip()]
    unknown = sorted(set(names) - set(EXPORTERS))
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {', '.join(unknown)} "
            f"(one or more of {', '.join(EXPORTERS)})"
        )
    names = [n for n in names if n != "none"]
    if not names or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    resource = Resource.create({
        "service.name": environ.get("OTEL_SERVICE_NAME") or f"agentlane-{component}",
        "service.namespace": "agentlane",
        "agentlane.component": component,
        # Pods (and `agentlane dev`'s children) are named by POD_NAME.
        "service.instance.id": environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
    })
    provider = TracerProvider(resource=resource)
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name, environ)))
    # Libraries that trace on their own (the ASGI middleware, Pub/Sub) use the global provider.
    trace.set_tracer_provider(provider)
    _instrument_libraries(provider)
    use_provider(provider)
    logger.info("tracing on", extra={"exporters": names})
    return provider


def use_provider(provider: TracerProvider | None) -> None:
    """Make our own spans (and event trace contexts) go to ``provider``; None turns them off.
    :func:`configure_tracing` calls it; a test may call it with a provider of its own."""
    global _provider
    _provider = provider


#: At exit, what is buffered gets this long to reach the collector: an exporter retrying a
#: collector that is away must not hold a pod past its grace period.
SHUTDOWN_TIMEOUT_S = 3.0


def shutdown_tracing() -> None:
    """Export what is buffered and stop (at process exit), within SHUTDOWN_TIMEOUT_S."""
    global _provider
    provider, _provider = _provider, None
    if provider is None:
        return
    done = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
    done.start()
    done.join(SHUTDOWN_TIMEOUT_S)
    if done.is_alive():
        logger.warning("spans still unexported after %.0fs at exit; dropped", SHUTDOWN_TIMEOUT_S)


@contextlib.contextmanager
def tracing(component: str) -> Iterator[None]:
    """:func:`configure_tracing` for the life of a service process."""
    configure_tracing(component)
    try:
        yield
    finally:
        shutdown_tracing()


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name == "gcp_trace":
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        return CloudTraceSpanExporter(  # type: ignore[no-untyped-call]
            project_id=environ.get("GOOGLE_CLOUD_PROJECT")
        )
    protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter()
    raise ConfigError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported (grpc or http/protobuf)"
    )


def _instrument_libraries(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    # Connections opened from now on are traced: this runs before any pool opens.
    PsycopgInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    # Prompts and answers stay out of spans unless
    # OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT asks for them: a trace backend is not
    # where users' conversations should end up by default.
    openai_instrumentor = OpenAIInstrumentor()  # type: ignore[no-untyped-call]
    openai_instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)


# --- spans of our own -----------------------------------------------------------------------------


def span(
    scope: str,
    name: str,
    *,
    parent: str | None = None,
    root: bool = False,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    links: Iterable[str | None] = (),
) -> contextlib.AbstractContextManager[Span | None]:
    """A span of ``scope`` (the component), current inside the ``with``; a child of the
    ``traceparent`` ``parent`` when given, else of the current span, else (``root``) of nothing:
    work done for many callers at once (a group commit) starts a trace of its own, linked to
    theirs by ``links`` (traceparents; Nones skipped). A shared no-op when tracing is off."""
    if _provider is None:
        return _NO_SPAN
    context = (
        otel_context.Context() if root else _context_of(parent) if parent is not None else None
    )
    return _provider.get_tracer(scope).start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=dict(attributes) if attributes else None,
        links=[link for link in map(_link, links) if link is not None],
    )


def now_ns() -> int | None:
    """A start time for :func:`record_spans` (None when tracing is off: nothing to time)."""
    return time.time_ns() if _provider is not None else None


def record_spans(
    scope: str,
    name: str,
    parents: Iterable[str | None],
    start_ns: int | None,
    *,
    attributes: Mapping[str, Any] | None = None,
    limit: int = 64,
) -> None:
    """Work done for many traces at once (a projector batch, a fan-out): one span in each
    distinct parent's trace (up to ``limit``), from ``start_ns`` to now."""
    if _provider is None or start_ns is None:
        return
    tracer = _provider.get_tracer(scope)
    for parent in list(dict.fromkeys(p for p in parents if p is not None))[:limit]:
        tracer.start_span(
            name, context=_context_of(parent), kind=SpanKind.CONSUMER, start_time=start_ns,
            attributes=dict(attributes) if attributes else None,
        ).end()


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (None when tracing is off or none is)."""
    if _provider is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def within(parent: str | None) -> Iterator[None]:
    """Make ``parent`` (a traceparent) the current context inside (code that opens spans without
    taking a parent, such as a client library's own tracing)."""
    if _provider is None or parent is None:
        yield
        return
    token = otel_context.attach(_context_of(parent))
    try:
        yield
    finally:
        otel_context.detach(token)


def trace_ids() -> tuple[str, str, bool] | None:
    """``(trace_id, span_id, sampled)`` of the current span in hex, for log lines and exemplars."""
    if _provider is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return (
        trace.format_trace_id(context.trace_id),
        trace.format_span_id(context.span_id),
        context.trace_flags.sampled,
    )


def exemplar() -> dict[str, str] | None:
    """The current sampled span's ids as a Prometheus exemplar (``trace_id``, ``span_id``): a
    latency histogram's bucket then points at a trace that fell in it."""
    ids = trace_ids()
    if ids is None or not ids[2]:
        return None
    return {"trace_id": ids[0], "span_id": ids[1]}


def _context_of(parent: str) -> otel_context.Context:
    return _PROPAGATOR.extract({"traceparent": parent}, context=otel_context.Context())


def _link(parent: str | None) -> Link | None:
    if parent is None:
        return None
    context = trace.get_current_span(_context_of(parent)).get_span_context()
    return Link(context) if context.is_valid else None
