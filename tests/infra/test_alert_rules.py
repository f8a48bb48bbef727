"""The alerts, as Prometheus rules: generated from the source the Pulumi program deploys, and
proven with promtool on series for the outages they exist for, "everything gone" included.

A machine without promtool (Debian's ``prometheus`` package; scripts/system-deps.sh installs it)
skips the promtool tests, unless ``AGENTLANE_REQUIRE_PROMTOOL=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.components.monitoring import RULE_FILE, rule_file_text, stack_alerts
from infra.config import RuntimeConfig
from tests.infra.infra_resources import StackRun

DEFAULT_RUNTIME = RuntimeConfig(jwt_audience="", model="")
SHARDS = DEFAULT_RUNTIME.shards
REQUESTS = (
    'run_googleapis_com:request_count{monitored_resource="cloud_run_revision",'
    'service_name="agentlane-command-service",response_code_class="%s"}'
)
HOLD = (
    "pubsub_googleapis_com:subscription_num_undelivered_messages{monitored_resource="
    '"pubsub_subscription",subscription_id="agent-events-dead-letter-hold"}'
)
#: What a healthy cell exports, minute by minute for ``MINUTES``: two runners holding every shard,
#: a projector leading with no lag, a young horizon, traffic without errors.
MINUTES = 30
CLOUDSQL = (
    'cloudsql_googleapis_com:database_%s{monitored_resource="cloudsql_database",'
    'database_id="p:agentlane"}'
)
LB = (
    'loadbalancing_googleapis_com:https_request_count{monitored_resource="https_lb_rule",'
    'response_code_class="%s"}'
)
HEALTHY: dict[str, str] = {
    'agentlane_runner_owned_shards{pod="runner-0"}': f"{SHARDS // 2}x{MINUTES}",
    'agentlane_runner_owned_shards{pod="runner-1"}': f"{SHARDS - SHARDS // 2}x{MINUTES}",
    'agentlane_projector_leader{pod="projector-0"}': f"1x{MINUTES}",
    'agentlane_projector_leader{pod="projector-1"}': f"0x{MINUTES}",
    'agentlane_projector_lag_seconds{pod="projector-0",checkpoint="read_models"}':
        f"0.2x{MINUTES}",
    'agentlane_transaction_horizon_age_seconds{pod="projector-0"}': f"0x{MINUTES}",
    'agentlane_runs_finished_total{type="Completed"}': f"0+600x{MINUTES}",
    'agentlane_runs_finished_total{type="Failed"}': f"0+1x{MINUTES}",
    REQUESTS % "2xx": f"0+6000x{MINUTES}",
    REQUESTS % "5xx": f"0+1x{MINUTES}",
    HOLD: f"0x{MINUTES}",
    'agentlane_runs_unrunnable{pod="runner-0",workflow="agent",version="1",reason="missing"}':
        f"0x{MINUTES}",
    CLOUDSQL % "cpu_utilization": f"0.3x{MINUTES}",
    CLOUDSQL % "disk_utilization": f"0.4x{MINUTES}",
    CLOUDSQL % "postgresql_num_backends": f"40x{MINUTES}",
    LB % "200": f"0+3000x{MINUTES}",
    LB % "500": f"0+2x{MINUTES}",
}
GONE = f"_x{MINUTES}"  # no sample at all: the pod that exported the series is gone


@dataclass(frozen=True)
class Scenario:
    name: str
    #: Series replacing the healthy ones (same key) or added.
    series: dict[str, str]
    #: Alerts expected firing at the end (minute MINUTES); every other alert must be quiet.
    firing: frozenset[str]
    #: Alerts that must still be quiet at this earlier minute (the ``for`` has not elapsed).
    quiet_at: dict[int, frozenset[str]] = field(default_factory=dict)


def gone_after(minutes: int, value: str) -> str:
    return f"{value}x{minutes} _x{MINUTES - minutes}"


SCENARIOS = (
    Scenario("healthy", {}, frozenset()),
    Scenario(
        "all runners gone",
        {
            'agentlane_runner_owned_shards{pod="runner-0"}': gone_after(3, str(SHARDS // 2)),
            'agentlane_runner_owned_shards{pod="runner-1"}': gone_after(3, str(SHARDS // 2)),
        },
        frozenset({"shards-unowned"}),
    ),
    Scenario(
        "one runner gone, its shards not taken over",
        {'agentlane_runner_owned_shards{pod="runner-1"}': gone_after(3, str(SHARDS // 2))},
        frozenset({"shards-unowned"}),
    ),
    Scenario(
        "projector gone",
        {
            'agentlane_projector_leader{pod="projector-0"}': gone_after(3, "1"),
            'agentlane_projector_leader{pod="projector-1"}': GONE,
            'agentlane_projector_lag_seconds{pod="projector-0",checkpoint="read_models"}':
                gone_after(3, "0.2"),
            'agentlane_transaction_horizon_age_seconds{pod="projector-0"}': gone_after(3, "0"),
            'agentlane_runs_finished_total{type="Completed"}': gone_after(3, "0"),
            'agentlane_runs_finished_total{type="Failed"}': gone_after(3, "0"),
        },
        frozenset({"projector-unled"}),
    ),
    Scenario(
        "projectors running, none leading",
        {'agentlane_projector_leader{pod="projector-0"}': f"1x5 0x{MINUTES - 5}"},
        frozenset({"projector-unled"}),
        quiet_at={6: frozenset({"projector-unled"})},
    ),
    Scenario(
        "lag rising",
        {
            'agentlane_projector_lag_seconds{pod="projector-0",checkpoint="read_models"}':
                f"0+5x{MINUTES}",
        },
        frozenset({"projector-lag"}),
        # Over 30 s from minute 7; the alert waits its 5 minutes.
        quiet_at={10: frozenset({"projector-lag"})},
    ),
    Scenario(
        "horizon stuck",
        {'agentlane_transaction_horizon_age_seconds{pod="projector-0"}': f"0+60x{MINUTES}"},
        frozenset({"tx-horizon-age"}),
    ),
    Scenario(
        "5xx burst",
        {REQUESTS % "5xx": f"0+1x15 15+900x{MINUTES - 15}"},
        frozenset({"command-5xx"}),
        quiet_at={14: frozenset({"command-5xx"})},
    ),
    Scenario(
        "runs failing",
        {'agentlane_runs_finished_total{type="Failed"}': f"0+60x{MINUTES}"},
        frozenset({"runs-failing"}),
    ),
    Scenario("dead letters", {HOLD: f"0x10 3x{MINUTES - 10}"}, frozenset({"dead-letters"})),
    Scenario(
        "database CPU saturated",
        {CLOUDSQL % "cpu_utilization": f"0.3x10 0.95x{MINUTES - 10}"},
        frozenset({"cloudsql-cpu"}),
        quiet_at={15: frozenset({"cloudsql-cpu"})},
    ),
    Scenario(
        "database disk filling",
        {CLOUDSQL % "disk_utilization": f"0.4+0.03x{MINUTES}"},
        frozenset({"cloudsql-disk"}),
    ),
    Scenario(
        # 100 allowed (the rule file's default), 80% of it is where someone should look.
        "connections near the limit",
        {CLOUDSQL % "postgresql_num_backends": f"40x10 95x{MINUTES - 10}"},
        frozenset({"cloudsql-connections"}),
    ),
    Scenario(
        "load balancer 5xx",
        {LB % "500": f"0+2x10 20+600x{MINUTES - 10}"},
        frozenset({"lb-5xx"}),
        quiet_at={12: frozenset({"lb-5xx"})},
    ),
    Scenario(
        "a deploy dropped the version of in-flight runs",
        {'agentlane_runs_unrunnable{pod="runner-0",workflow="agent",version="1",reason="missing"}':
            f"0x5 3x{MINUTES - 5}"},
        frozenset({"runs-unrunnable"}),
        # Waiting runs for a few minutes is a rollout in progress, not yet a page.
        quiet_at={15: frozenset({"runs-unrunnable"})},
    ),
)


def test_the_rule_file_is_what_the_alerts_generate() -> None:
    """Regenerate with `python -m infra.components.monitoring` after changing an alert."""
    assert RULE_FILE.read_text() == rule_file_text(stack_alerts(DEFAULT_RUNTIME))


def test_every_stack_deploys_the_alerts_of_the_rule_file(run: StackRun) -> None:
    policies = run.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    deployed = {
        c["conditionPrometheusQueryLanguage"]["query"]: c["conditionPrometheusQueryLanguage"][
            "duration"
        ]
        for policy in policies
        for c in policy.inputs["conditions"]
    }
    rules = yaml.safe_load(RULE_FILE.read_text())["groups"][0]["rules"]

    def per_stack(expr: str) -> str:
        # The connections alert's threshold is 80% of each stack's own max_connections.
        return re.sub(r"(postgresql_num_backends\{[^}]*\}\)) > \d+$", r"\1 > N", expr)

    assert {per_stack(q): d for q, d in deployed.items()} == {
        per_stack(rule["expr"]): rule["for"] for rule in rules
    }
    (connections,) = [q for q in deployed if "num_backends" in q]
    assert int(connections.rsplit(" ", 1)[1]) >= 80


def test_every_alert_has_a_scenario_that_fires_it() -> None:
    fired = set().union(*(s.firing for s in SCENARIOS))
    assert fired == {alert.key for alert in stack_alerts(DEFAULT_RUNTIME)}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("AGENTLANE_REQUIRE_PROMTOOL") == "1":
            pytest.fail("promtool is missing (Debian: prometheus); AGENTLANE_REQUIRE_PROMTOOL=1")
        pytest.skip("promtool is missing: apt-get install prometheus (scripts/system-deps.sh)")
    return found


def test_promtool_accepts_the_rule_file() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULE_FILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def promtool_tests() -> dict[str, Any]:
    """The scenarios as a promtool test file, each alert expected with its labels and
    annotations as the rule file has them."""
    rules = {r["alert"]: r for r in yaml.safe_load(RULE_FILE.read_text())["groups"][0]["rules"]}

    def expected(key: str) -> dict[str, Any]:
        return {"exp_labels": rules[key]["labels"], "exp_annotations": rules[key]["annotations"]}

    tests = []
    for scenario in SCENARIOS:
        series = {**HEALTHY, **scenario.series}
        checks = [
            {
                "eval_time": f"{MINUTES}m",
                "alertname": key,
                "exp_alerts": [expected(key)] if key in scenario.firing else [],
            }
            for key in rules
        ]
        checks += [
            {"eval_time": f"{minute}m", "alertname": key, "exp_alerts": []}
            for minute, keys in scenario.quiet_at.items()
            for key in keys
        ]
        tests.append(
            {
                "name": scenario.name,
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": checks,
            }
        )
    return {"rule_files": [str(RULE_FILE)], "evaluation_interval": "1m", "tests": tests}


def test_promtool_fires_each_alert_for_its_outage_and_no_other(tmp_path: Path) -> None:
    tests = tmp_path / "alerts.test.yml"
    tests.write_text(yaml.safe_dump(promtool_tests(), sort_keys=False))
    result = subprocess.run(
        [promtool(), "test", "rules", str(tests)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
