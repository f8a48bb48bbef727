"""Prometheus metrics of the gateway, on the registry the process serves at ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    """The gateway's collectors, created on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sockets = Gauge(
            "agentlane_gateway_sockets", "WebSocket connections currently open", registry=registry
        )
        self.connects = Counter(
            "agentlane_gateway_connects_total", "WebSocket connections accepted",
            registry=registry,
        )
        self.closes = Counter(
            "agentlane_gateway_closes_total", "WebSocket connections closed by the gateway",
            ["code"], registry=registry,
        )
        self.rejected = Counter(
            "agentlane_gateway_rejected_total", "connections refused before streaming",
            ["reason"], registry=registry,
        )
        self.commands = Counter(
            "agentlane_gateway_commands_total",
            "commands received on sockets: accepted, replayed (a retried ask) or the error code",
            ["command", "outcome"], registry=registry,
        )
        self.bad_frames = Counter(
            "agentlane_gateway_bad_frames_total", "inbound frames answered with an error",
            ["code"], registry=registry,
        )
        self.live_events = Counter(
            "agentlane_gateway_live_events_total", "events received from the bus, per source",
            ["source"], registry=registry,
        )
        self.gap_fetches = Counter(
            "agentlane_gateway_gap_fetches_total",
            "Postgres reads of session history (at connect, or a gap in live events)",
            registry=registry,
        )
        self.history_reads_joined = Counter(
            "agentlane_gateway_history_reads_joined_total",
            "history requests answered by another socket's identical read (reconnect bursts)",
            registry=registry,
        )
        self.replay_seconds = Histogram(
            "agentlane_gateway_replay_seconds", "time from accept to the ready frame",
            registry=registry,
        )
