"""The connection pools' own statistics as Prometheus metrics, for every pool of the process.

psycopg_pool counts, per pool, the connections it holds and lends, the requests that waited for
one and how long, and the connections it made, lost or failed to make. :class:`PoolCollector`
reads them (``get_stats``: cumulative, so counters stay counters) from every pool open in the
process at scrape time, labelled by the pool's name (``agentlane-<name>`` of
:func:`agentlane.db.create_pool`). A pool exhausted by a slow query shows as
``agentlane_db_pool_requests_waiting`` before it shows as latency anywhere else.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool

#: The pools open in this process (weak: a closed and dropped pool leaves by itself).
_OPEN: weakref.WeakSet[AsyncConnectionPool] = weakref.WeakSet()


def track(pool: AsyncConnectionPool) -> None:
    """Report ``pool``'s statistics while it is open."""
    _OPEN.add(pool)


def untrack(pool: AsyncConnectionPool) -> None:
    _OPEN.discard(pool)


#: (stat, metric suffix, help): gauges of the pool's state now.
_GAUGES = (
    ("pool_size", "connections", "Connections the pool holds, lent or idle"),
    ("pool_available", "connections_idle", "Connections idle in the pool"),
    ("pool_max", "connections_max", "The most connections the pool may hold"),
    ("requests_waiting", "requests_waiting", "Requests waiting for a connection now"),
)
#: (stat, metric suffix, help, scale to the unit): cumulative counts since the pool opened.
_COUNTERS = (
    ("requests_num", "requests", "Connections asked of the pool", 1.0),
    ("requests_queued", "requests_queued", "Requests that had to wait for a connection", 1.0),
    ("requests_wait_ms", "request_wait_seconds", "Time requests spent waiting", 0.001),
    ("requests_errors", "request_errors", "Requests that got no connection in time", 1.0),
    ("usage_ms", "usage_seconds", "Time connections spent lent out", 0.001),
    ("connections_num", "connects", "Connections the pool opened", 1.0),
    ("connections_ms", "connect_seconds", "Time spent opening connections", 0.001),
    ("connections_errors", "connect_errors", "Connection attempts that failed", 1.0),
    ("connections_lost", "connections_lost", "Connections found broken and dropped", 1.0),
)


class PoolCollector(Collector):
    """``agentlane_db_pool_*{pool=…}`` for every tracked pool, read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = [(pool.name, pool.get_stats()) for pool in list(_OPEN)]
        for stat, suffix, text in _GAUGES:
            gauge = GaugeMetricFamily(f"agentlane_db_pool_{suffix}", text, labels=["pool"])
            for name, values in stats:
                gauge.add_metric([name], values.get(stat, 0))
            yield gauge
        for stat, suffix, text, scale in _COUNTERS:
            counter = CounterMetricFamily(f"agentlane_db_pool_{suffix}", text, labels=["pool"])
            for name, values in stats:
                counter.add_metric([name], values.get(stat, 0) * scale)
            yield counter
