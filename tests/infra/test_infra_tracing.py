"""Tracing in a deployment: the services send spans to Cloud Trace at the stack's sample ratio,
their accounts may write spans and nothing more, and a stack can turn tracing off."""

from __future__ import annotations

from typing import Any

import pytest

from agentlane.telemetry import EXPORTERS
from infra.components import workload_env
from infra.components.names import COMMAND_SERVICE, GATEWAY, PROJECTOR, RUNNER, TRACED
from infra.config import ConfigError, RuntimeConfig
from tests.infra.infra_resources import StackRun
from tests.infra.test_infra_config import _parse


def _env(workload: Any, config: Any) -> dict[str, str | None]:
    return {e.name: e.value for e in workload_env.env_for(workload, config)}


def test_the_services_trace_to_cloud_trace_at_the_stacks_ratio() -> None:
    config = _parse("prod")
    for workload in (COMMAND_SERVICE, RUNNER, PROJECTOR, GATEWAY):
        env = _env(workload, config)
        assert env["OTEL_TRACES_EXPORTER"] == "gcp_trace" and "gcp_trace" in EXPORTERS
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == str(RuntimeConfig.trace_sample_ratio)


def test_a_stack_can_turn_tracing_off() -> None:
    raw = _parse("dev").runtime
    config = _parse("dev", runtime={"model": raw.model, "jwtAudience": raw.jwt_audience,
                                    "traceSampleRatio": 0})
    for workload in TRACED:
        assert "OTEL_TRACES_EXPORTER" not in _env(workload, config)


@pytest.mark.parametrize("ratio", [1.5, -0.1, "all"])
def test_a_sample_ratio_outside_zero_to_one_is_refused(ratio: Any) -> None:
    raw = _parse("dev").runtime
    with pytest.raises(ConfigError, match=r"runtime\.traceSampleRatio"):
        _parse("dev", runtime={"model": raw.model, "jwtAudience": raw.jwt_audience,
                               "traceSampleRatio": ratio})


def test_each_traced_service_may_write_spans(run: StackRun) -> None:
    grants = [
        r for r in run.of_type("gcp:projects/iAMMember:IAMMember")
        if r.inputs["role"] == "roles/cloudtrace.agent"
    ]
    members = {g.inputs["member"].removeprefix("serviceAccount:") for g in grants}
    assert members == {
        f"agentlane-{w.component}@{run.project}.iam.gserviceaccount.com" for w in TRACED
    }
