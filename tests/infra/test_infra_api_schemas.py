"""What the program sends each Google API, checked against the API's own schema (the messages
gcloud generates from its discovery documents: Cloud Run v2, Cloud SQL Admin, Container, Compute,
Cloud Storage, Pub/Sub). A field the API does not have, at any depth, fails here; the tables
below are every place Pulumi's inputs differ from the REST fields, so a new difference is a
decision made in review, not a surprise at `pulumi up`."""

from __future__ import annotations

import copy
import os

import pytest

from tests.infra.api_schemas import SKIP, ApiShape, messages, unknown_fields
from tests.infra.infra_resources import StackRun

COMPUTE = "compute.v1.compute_v1_messages"

SHAPES: dict[str, ApiShape] = {
    "gcp:cloudrunv2/service:Service": ApiShape(
        "run.v2.run_v2_messages", "GoogleCloudRunV2Service",
        {
            ("GoogleCloudRunV2Service", "location"): SKIP,  # the request's path
            ("GoogleCloudRunV2Service", "deletionProtection"): SKIP,  # the provider's guard
            ("GoogleCloudRunV2Container", "envs"): "env",
            ("GoogleCloudRunV2Container", "commands"): "command",
            ("GoogleCloudRunV2Container", "dependsOns"): "dependsOn",
        },
    ),
    "gcp:sql/databaseInstance:DatabaseInstance": ApiShape(
        "sqladmin.v1beta4.sqladmin_v1beta4_messages", "DatabaseInstance",
        {
            ("DatabaseInstance", "deletionProtection"): SKIP,
            ("Settings", "diskSize"): "dataDiskSizeGb",
            ("Settings", "diskType"): "dataDiskType",
            ("Settings", "diskAutoresize"): "storageAutoResize",
        },
    ),
    "gcp:container/cluster:Cluster": ApiShape(
        "container.v1.container_v1_messages", "Cluster",
        {
            ("Cluster", "deletionProtection"): SKIP,
            ("Cluster", "clusterAutoscaling"): "autoscaling",
            ("ClusterAutoscaling", "autoProvisioningDefaults"): "autoprovisioningNodePoolDefaults",
            ("Cluster", "enableAutopilot"): "autopilot",  # a bool for {"enabled": …}
            ("MonitoringConfig", "managedPrometheus"): "managedPrometheusConfig",
        },
    ),
    "gcp:compute/backendService:BackendService": ApiShape(
        COMPUTE, "BackendService",
        {("BackendService", "connectionDrainingTimeoutSec"): "connectionDraining"},
    ),
    "gcp:compute/uRLMap:URLMap": ApiShape(COMPUTE, "UrlMap"),
    "gcp:compute/securityPolicy:SecurityPolicy": ApiShape(COMPUTE, "SecurityPolicy"),
    "gcp:compute/healthCheck:HealthCheck": ApiShape(COMPUTE, "HealthCheck"),
    "gcp:compute/firewall:Firewall": ApiShape(
        COMPUTE, "Firewall",
        {("Firewall", "allows"): "allowed", ("AllowedValueListEntry", "protocol"): "IPProtocol"},
    ),
    "gcp:compute/subnetwork:Subnetwork": ApiShape(COMPUTE, "Subnetwork"),
    "gcp:compute/routerNat:RouterNat": ApiShape(
        COMPUTE, "RouterNat", {("RouterNat", "router"): SKIP, ("RouterNat", "region"): SKIP}
    ),
    "gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup": ApiShape(
        COMPUTE, "NetworkEndpointGroup"
    ),
    "gcp:storage/bucket:Bucket": ApiShape(
        "storage.v1.storage_v1_messages", "Bucket",
        {
            ("Bucket", "forceDestroy"): SKIP,
            # Both live in the API's iamConfiguration object.
            ("Bucket", "uniformBucketLevelAccess"): "iamConfiguration",
            ("Bucket", "publicAccessPrevention"): "iamConfiguration",
        },
    ),
    "gcp:pubsub/topic:Topic": ApiShape("pubsub.v1.pubsub_v1_messages", "Topic"),
    "gcp:pubsub/subscription:Subscription": ApiShape(
        "pubsub.v1.pubsub_v1_messages", "Subscription"
    ),
}

# CI has gcloud (its Pub/Sub emulator is required there): a missing gcloud fails instead.
pytestmark = pytest.mark.skipif(
    messages("run.v2.run_v2_messages") is None
    and os.environ.get("AGENTLANE_REQUIRE_PUBSUB") != "1",
    reason="needs gcloud's generated API messages (/usr/lib/google-cloud-sdk)",
)


def test_every_input_is_a_field_of_its_api(run: StackRun) -> None:
    checked = 0
    for resource_type, shape in SHAPES.items():
        for resource in run.of_type(resource_type):
            assert unknown_fields(shape, resource.inputs) == [], resource.name
            checked += 1
    assert checked >= 15


def test_a_misspelled_or_misplaced_field_is_caught(stack_runs: dict[str, StackRun]) -> None:
    service = stack_runs["prod"].one("gcp:cloudrunv2/service:Service")
    shape = SHAPES[service.type]
    wrong = copy.deepcopy(service.inputs)
    wrong["template"]["containers"][0]["startupProbe"]["httpGet"]["paht"] = "/readyz"
    wrong["template"]["timeoutSeconds"] = 3600  # the API's field is template.timeout
    assert unknown_fields(shape, wrong) == [
        "GoogleCloudRunV2Service.template.containers[0].startupProbe.httpGet.paht "
        "(GoogleCloudRunV2HTTPGetAction has no 'paht')",
        "GoogleCloudRunV2Service.template.timeoutSeconds "
        "(GoogleCloudRunV2RevisionTemplate has no 'timeoutSeconds')",
    ]
