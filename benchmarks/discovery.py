"""What fair discovery costs: the runners' due-run query in turns across tenants, beside the
oldest-first query it replaced, on a backlog of due runs.

    python benchmarks/discovery.py [--due 100,2000,10000] [--tenants 5] [--calls 50]

For each backlog size, ``--due`` runs (each the head of its own session, over 64 shards,
``--tenants`` tenants, one of them with 10 runs in flight) are due now; the query asks for 64 runs
of 32 shards, ``--calls`` times. Printed per size, with the load average: ms per call of each
query and their ratio. The baseline is the oldest-first query (``ORDER BY wake_at``), in the same
run on the same rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from agentlane import run_index
from benchmarks._load import load_average
from benchmarks._pg import benchmark_database

OLDEST_FIRST = f"""
SELECT r.tenant_id, r.session_id, r.execution_id, r.shard_id
FROM run_index r
WHERE r.wake_at <= now() AND {run_index._HEADS}
ORDER BY r.wake_at
LIMIT %(limit)s
"""


def per_call_ms(conn: psycopg.Connection, query: str, params: dict[str, Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        conn.execute(query, params).fetchall()
    return (time.perf_counter() - started) / calls * 1000


def main(args: argparse.Namespace) -> None:
    with benchmark_database() as url, psycopg.connect(url, autocommit=True) as conn:
        params = {
            "shards": list(range(32)), "busy": [], "limit": 64,
            "tenants": ["t1"], "running": [10], "per_tenant": 48,
        }
        for due in (int(n) for n in args.due.split(",")):
            conn.execute("DELETE FROM run_index")
            conn.execute(
                "INSERT INTO run_index (execution_id, tenant_id, session_id, run_id, shard_id, "
                "accepted_seq, status, wake_at) SELECT 'ex' || i, 't' || (i %% %s), 's' || i, "
                "'r' || i, i %% 64, 1, 'queued', now() - make_interval(secs => i / 1000.0) "
                "FROM generate_series(1, %s) i",
                (args.tenants, due),
            )
            conn.execute("ANALYZE run_index")
            fair = per_call_ms(conn, run_index._DUE, params, args.calls)
            oldest = per_call_ms(conn, OLDEST_FIRST, params, args.calls)
            print(f"{due:>6} due runs ({load_average()}): in turns {fair:.2f} ms, "
                  f"oldest first {oldest:.2f} ms, ratio {fair / oldest:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", default="100,2000,10000")
    parser.add_argument("--tenants", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50)
    main(parser.parse_args())
