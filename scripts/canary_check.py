"""The deploy pipeline's check between the canary and the rest of a rollout:

    python scripts/canary_check.py --prometheus URL [--pod agentlane-runner-2] [--minutes 5]

Asks a Prometheus HTTP API (Google Managed Prometheus's is
``https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus``; a token of
the ambient Google credentials is sent to it) about the canary runner pod over the last minutes,
and fails the rollout when its runs go wrong where the old runners' do not:

- failed advances: the canary's share of advances that ended ``failed`` above ``--max-failed``
  (and above the others' share plus that margin): a new version that cannot run old runs (a
  non-deterministic workflow, a renamed step) fails them on replay;
- fenced appends on the canary (a writer that lost its lease keeps writing: a lease bug);
- due work older than ``--max-due-age`` seconds on the canary's shards (it holds shards and does
  not advance them).

One line per finding, and ``canary: ok`` or ``canary: FAILED``; exit 0 or 1.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import httpx

QUERIES = {
    "failed_share": (
        'sum(increase(agentlane_runner_advances_total{{pod="{pod}",outcome="failed"}}[{m}m])) / '
        'clamp_min(sum(increase(agentlane_runner_advances_total{{pod="{pod}"}}[{m}m])), 1)'
    ),
    "others_failed_share": (
        'sum(increase(agentlane_runner_advances_total{{pod!="{pod}",outcome="failed"}}[{m}m]))'
        ' / clamp_min(sum(increase(agentlane_runner_advances_total{{pod!="{pod}"}}[{m}m])), 1)'
    ),
    "fenced": 'sum(increase(agentlane_runner_fenced_appends_total{{pod="{pod}"}}[{m}m]))',
    "due_age": 'max(max_over_time(agentlane_oldest_due_work_age_seconds{{pod="{pod}"}}[{m}m]))',
}


@dataclass(frozen=True)
class Limits:
    max_failed: float = 0.05
    max_due_age_s: float = 120.0


def query(client: httpx.Client, prometheus: str, promql: str) -> float:
    """An instant query's one value (0 when the series is absent: nothing happened)."""
    response = client.get(f"{prometheus.rstrip('/')}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {body.get('error', body)}")
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def findings(values: dict[str, float], limits: Limits) -> list[str]:
    """What is wrong with the canary, from the queries' values."""
    found = []
    failed, others = values["failed_share"], values["others_failed_share"]
    if failed > limits.max_failed and failed > others + limits.max_failed:
        found.append(
            f"failed advances: {failed:.1%} on the canary against {others:.1%} on the others"
        )
    if values["fenced"] > 0:
        found.append(f"fenced appends on the canary: {values['fenced']:.0f}")
    if values["due_age"] > limits.max_due_age_s:
        found.append(f"due work {values['due_age']:.0f}s old on the canary's shards")
    return found


def _google_token() -> str | None:
    try:
        import google.auth
        import google.auth.transport.requests
    except ImportError:
        return None
    try:
        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/monitoring.read"]
        )
    except google.auth.exceptions.DefaultCredentialsError:
        return None  # a local Prometheus needs none
    credentials.refresh(google.auth.transport.requests.Request())  # type: ignore[no-untyped-call]
    return str(credentials.token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL of a Prometheus HTTP API")
    parser.add_argument("--pod", default="agentlane-runner-2", help="the canary runner's pod")
    parser.add_argument("--minutes", type=int, default=5, help="the window looked at (5)")
    parser.add_argument("--max-failed", type=float, default=Limits.max_failed)
    parser.add_argument("--max-due-age", type=float, default=Limits.max_due_age_s)
    args = parser.parse_args(argv)
    token = _google_token() if "googleapis.com" in args.prometheus else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(headers=headers, timeout=30) as client:
            values = {
                name: query(client, args.prometheus, promql.format(pod=args.pod, m=args.minutes))
                for name, promql in QUERIES.items()
            }
    except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
        print(f"canary: FAILED: cannot read the metrics: {exc}")
        return 1
    found = findings(values, Limits(args.max_failed, args.max_due_age))
    for line in found:
        print(f"canary: {line}")
    print("canary: FAILED" if found else f"canary: ok ({args.pod}, last {args.minutes} min)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
