"""Prometheus metrics of the gateway (default registry, served by run_service at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SOCKETS = Gauge("agentlane_gateway_sockets", "WebSocket connections currently open")
CONNECTS = Counter("agentlane_gateway_connects_total", "WebSocket connections accepted")
CLOSES = Counter(
    "agentlane_gateway_closes_total", "WebSocket connections closed by the gateway", ["code"]
)
REJECTED = Counter(
    "agentlane_gateway_rejected_total", "connections refused before streaming", ["reason"]
)
BAD_FRAMES = Counter(
    "agentlane_gateway_bad_frames_total", "inbound frames answered with an error", ["code"]
)
LIVE_EVENTS = Counter(
    "agentlane_gateway_live_events_total", "events received from the bus, per source", ["source"]
)
GAP_FETCHES = Counter(
    "agentlane_gateway_gap_fetches_total",
    "Postgres reads of a socket's history or of a gap in its live events",
)
REPLAY_SECONDS = Histogram(
    "agentlane_gateway_replay_seconds", "time from accept to the ready frame"
)
