"""The whole Pulumi program, run under mocks for every stack: what it would create.

Each test reads the recorded inputs, providers and dependency URNs of one stack's resources.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra.components.edge import WEBSOCKET_TIMEOUT_SECONDS
from infra.components.names import NAMESPACE
from infra.components.network_policies import LOAD_BALANCER_RANGES
from infra.components.pod import EXIT_MARGIN_SECONDS, PRE_STOP_SECONDS, PROCESS_GRACE_SECONDS
from infra.components.pubsub import LIVE_SUBSCRIBER_PERMISSIONS
from infra.policy.rules import LABEL_PATHS, REQUIRED_LABELS, violations
from tests.infra.infra_resources import K8S_PROVIDER, Resource, StackRun, run_stacks

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
CLUSTER = "gcp:container/cluster:Cluster"
CLOUD_RUN = "gcp:cloudrunv2/service:Service"
INFRA = Path(__file__).resolve().parents[2] / "infra"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job")
WI_MEMBER = re.compile(r"^serviceAccount:(?P<pool>[^\[]+)\[(?P<ns>[^/]+)/(?P<ksa>[^\]]+)\]$")


def _pod_workloads(run: StackRun, kinds: tuple[str, ...] = WORKLOAD_KINDS) -> list[Resource]:
    return [r for r in run.kubernetes() if r.inputs.get("kind") in kinds]


def _containers(workload: Resource) -> list[dict]:
    return workload.get("spec", "template", "spec", "containers")


def test_database_is_private_tls_only_and_waits_for_the_peering(run: StackRun) -> None:
    db = run.one(SQL)
    ip = db.get("settings", "ipConfiguration")
    assert ip["ipv4Enabled"] is False
    assert ip["privateNetwork"]
    assert not ip.get("authorizedNetworks")
    assert ip["sslMode"] == "ENCRYPTED_ONLY"
    assert db.inputs["databaseVersion"] == "POSTGRES_18"
    # The explicit depends_on (seed module 24): the instance reads nothing from the peering.
    peering = run.one("gcp:servicenetworking/connection:Connection")
    assert peering.urn in db.dependencies


def test_database_recovery_and_guards_follow_the_stack(run: StackRun) -> None:
    settings = run.one(SQL).get("settings")
    backups = settings["backupConfiguration"]
    assert backups["enabled"] is True
    assert backups["pointInTimeRecoveryEnabled"] is True
    prod_like = run.stack in ("staging", "prod")
    assert settings["availabilityType"] == ("REGIONAL" if prod_like else "ZONAL")
    protected = run.stack == "prod"
    assert run.one(SQL).inputs["deletionProtection"] is protected
    assert settings["deletionProtectionEnabled"] is protected
    assert run.one(CLUSTER).inputs["deletionProtection"] is protected


def test_prod_is_larger_than_dev(stack_runs: dict[str, StackRun]) -> None:
    def cpus(stack: str) -> int:
        return int(stack_runs[stack].one(SQL).get("settings", "tier").split("-")[2])

    assert cpus("prod") > cpus("staging") >= cpus("dev")


def test_database_bounds_idle_transactions_and_long_statements(run: StackRun) -> None:
    flags = {f["name"]: f["value"] for f in run.one(SQL).get("settings", "databaseFlags")}
    assert 0 < int(flags["idle_in_transaction_session_timeout"]) <= 300_000
    assert int(flags["statement_timeout"]) > 0


def test_cluster_is_private_autopilot_with_closed_control_plane(run: StackRun) -> None:
    cluster = run.one(CLUSTER)
    assert cluster.inputs["enableAutopilot"] is True
    assert "nodeConfig" not in cluster.inputs and "nodePools" not in cluster.inputs
    assert cluster.get("privateClusterConfig", "enablePrivateNodes") is True
    blocks = cluster.get("masterAuthorizedNetworksConfig", "cidrBlocks")
    assert blocks
    assert all(not b["cidrBlock"].endswith("/0") for b in blocks)
    subnet = run.one("gcp:compute/subnetwork:Subnetwork")
    ranges = {r["rangeName"] for r in subnet.inputs["secondaryIpRanges"]}
    policy = cluster.inputs["ipAllocationPolicy"]
    assert {policy["clusterSecondaryRangeName"], policy["servicesSecondaryRangeName"]} == ranges


def test_cloud_run_is_internal_with_direct_vpc_egress(run: StackRun) -> None:
    service = run.one(CLOUD_RUN)
    assert service.inputs["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    template = service.inputs["template"]
    assert template["vpcAccess"]["networkInterfaces"][0]["network"]
    assert template["scaling"]["minInstanceCount"] >= 0
    assert template["scaling"]["maxInstanceCount"] >= 1
    assert template["maxInstanceRequestConcurrency"] >= 1
    assert template["containers"][0]["commands"] == ["agentlane", "command-service"]
    # Cloud Run reads DATABASE_URL from Secret Manager; its grant must exist first.
    grant = run.one("gcp:secretmanager/secretIamMember:SecretIamMember")
    assert grant.urn in service.dependencies


def test_pools_and_max_connections_are_what_the_budget_counted(run: StackRun) -> None:
    flags = {f["name"]: f["value"] for f in run.one(SQL).get("settings", "databaseFlags")}
    assert int(flags["max_connections"]) >= 100
    pools = {
        w.get("metadata", "labels", "component"): next(
            e["value"] for e in _containers(w)[0]["env"] if e["name"] == "AGENTLANE_DB_POOL_MAX"
        )
        for w in _pod_workloads(run, ("Deployment", "StatefulSet"))
    }
    assert set(pools) == {"runner", "projector", "gateway"}
    assert pools["projector"] == "10"
    envs = run.one(CLOUD_RUN).inputs["template"]["containers"][0]["envs"]
    assert any(e["name"] == "AGENTLANE_DB_POOL_MAX" for e in envs)


def test_cloud_run_streams_for_an_hour_routes_only_when_ready_and_drains_before_sigkill(
    run: StackRun,
) -> None:
    template = run.one(CLOUD_RUN).inputs["template"]
    assert template["timeout"] == "3600s", "the 300 s default would cut event streams"
    app = template["containers"][0]
    assert app["startupProbe"]["httpGet"]["path"] == "/readyz"  # migrations applied first
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    flag = app["args"].index("--drain-grace")
    assert 0 < float(app["args"][flag + 1]) < 10, "Cloud Run sends SIGKILL 10 s after SIGTERM"


def test_the_process_grace_the_pods_assume_is_run_services() -> None:
    import inspect

    from agentlane.service import run_service

    default = inspect.signature(run_service).parameters["grace_s"].default
    assert default == PROCESS_GRACE_SECONDS


def test_the_command_services_metrics_are_collected_on_cloud_run(run: StackRun) -> None:
    """Cloud Run has no PodMonitoring: a Managed Prometheus sidecar scrapes the service's
    /metrics on its own port and writes them as the service's account."""
    from infra.components.command_service import PROMETHEUS_SIDECAR_IMAGE
    from infra.components.workload_env import HTTP_PORT

    service = run.one(CLOUD_RUN)
    app, collector = service.inputs["template"]["containers"]
    assert app["ports"]["containerPort"] == HTTP_PORT == 8080  # the sidecar's default target
    assert collector["image"] == PROMETHEUS_SIDECAR_IMAGE
    assert collector["dependsOns"] == [app["name"]]
    assert "ports" not in collector, "only the service's container takes requests"
    writers = [
        r for r in run.of_type("gcp:projects/iAMMember:IAMMember")
        if r.inputs["role"] == "roles/monitoring.metricWriter"
    ]
    (writer,) = writers
    account = service.inputs["template"]["serviceAccount"]
    assert writer.inputs["member"] == f"serviceAccount:{account}"


def test_no_owner_editor_or_admin_role_anywhere(run: StackRun) -> None:
    roles = [r.inputs["role"] for r in run.resources if "role" in r.inputs]
    assert roles, "the program grants roles; the recorder must see them"
    for role in roles:
        assert role not in ("roles/owner", "roles/editor", "roles/viewer")
        assert "admin" not in role.lower()
    members = [r.inputs.get("member") for r in run.resources]
    assert not {"allUsers", "allAuthenticatedUsers"} & set(members)
    custom = run.one("gcp:projects/iAMCustomRole:IAMCustomRole", "live-subscriber")
    assert sorted(custom.inputs["permissions"]) == sorted(LIVE_SUBSCRIBER_PERMISSIONS)
    # Custom roles grant objects' and subscriptions' permissions only, never an admin's.
    for role in run.of_type("gcp:projects/iAMCustomRole:IAMCustomRole"):
        assert not any(p.endswith((".delete", ".setIamPolicy")) and p.startswith("storage.")
                       for p in role.inputs["permissions"]), role.name


def test_workload_identity_members_match_existing_ksas(run: StackRun) -> None:
    ksas = {
        (r.get("metadata", "namespace"), r.get("metadata", "name")): r
        for r in run.kubernetes()
        if r.inputs.get("kind") == "ServiceAccount"
    }
    accounts = {
        f"projects/{run.project}/serviceAccounts/{a.inputs['accountId']}@"
        f"{run.project}.iam.gserviceaccount.com": a
        for a in run.of_type("gcp:serviceaccount/account:Account")
    }
    bindings = [
        r
        for r in run.of_type("gcp:serviceaccount/iAMMember:IAMMember")
        if r.inputs["role"] == "roles/iam.workloadIdentityUser"
    ]
    assert len(bindings) == len(ksas) == 5
    for binding in bindings:
        match = WI_MEMBER.match(binding.inputs["member"])
        assert match, binding.inputs["member"]
        assert match["pool"] == f"{run.project}.svc.id.goog"
        ksa = ksas[(match["ns"], match["ksa"])]
        gsa_email = binding.inputs["serviceAccountId"].rsplit("/", 1)[-1]
        assert binding.inputs["serviceAccountId"] in accounts
        assert ksa.get("metadata", "annotations", "iam.gke.io/gcp-service-account") == gsa_email
        # The pool exists only once the cluster does.
        assert run.one(CLUSTER).urn in binding.dependencies


def test_secret_access_is_granted_per_secret(run: StackRun) -> None:
    project_roles = [r.inputs["role"] for r in run.of_type("gcp:projects/iAMMember:IAMMember")]
    assert not [role for role in project_roles if "secretmanager" in role]
    secrets = {s.urn for s in run.of_type("gcp:secretmanager/secret:Secret")}
    assert len(secrets) == 5
    for grant in run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember"):
        assert grant.inputs["role"] == "roles/secretmanager.secretAccessor"
        assert grant.inputs["secretId"].startswith(f"projects/{run.project}/secrets/")


def test_topic_and_dead_letters_are_wired(run: StackRun) -> None:
    topics = {t.inputs["name"] for t in run.of_type("gcp:pubsub/topic:Topic")}
    assert topics == {"agent-events", "agent-events-dead-letter"}
    subscriptions = run.of_type("gcp:pubsub/subscription:Subscription")
    assert subscriptions
    for sub in subscriptions:
        if sub.inputs["topic"].endswith("-dead-letter"):
            continue  # the hold subscription that keeps dead letters
        policy = sub.inputs["deadLetterPolicy"]
        assert policy["deadLetterTopic"].endswith("agent-events-dead-letter")
        assert 5 <= policy["maxDeliveryAttempts"] <= 100
    assert any(s.inputs["topic"] == "agent-events-dead-letter" for s in subscriptions)
    agent = "serviceAccount:service-123456789@gcp-sa-pubsub.iam.gserviceaccount.com"
    grants = {
        (r.inputs.get("topic"), r.inputs["role"])
        for r in run.resources
        if r.inputs.get("member") == agent
    }
    assert ("agent-events-dead-letter", "roles/pubsub.publisher") in grants
    assert (None, "roles/pubsub.subscriber") in grants


def test_every_container_has_probes_prestop_and_fixed_resources(run: StackRun) -> None:
    workloads = _pod_workloads(run)
    assert {w.inputs["kind"] for w in workloads} == set(WORKLOAD_KINDS)
    for workload in workloads:
        pod = workload.get("spec", "template", "spec")
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in _containers(workload):
            assert c["resources"]["requests"] == c["resources"]["limits"]
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            if workload.inputs["kind"] == "Job":
                continue  # runs to completion: nothing to probe or drain
            assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["lifecycle"]["preStop"]["sleep"]["seconds"] == PRE_STOP_SECONDS == 10
            # SIGKILL only after preStop, the process's whole drain and a margin to exit.
            assert pod["terminationGracePeriodSeconds"] >= (
                PRE_STOP_SECONDS + PROCESS_GRACE_SECONDS + EXIT_MARGIN_SECONDS
            )


def test_container_commands_are_the_cli_subcommands(run: StackRun) -> None:
    commands = {
        w.get("metadata", "labels", "component"): _containers(w)[0]["command"]
        for w in _pod_workloads(run)
    }
    migrate = commands.pop("migrate")
    assert commands == {
        component: ["agentlane", component] for component in ("runner", "projector", "gateway")
    }
    assert migrate[:2] == ["agentlane", "migrate"]
    images = {_containers(w)[0]["image"] for w in _pod_workloads(run)}
    assert len(images) == 1 and not images.pop().endswith(":latest")


def test_the_model_key_reaches_runners_as_a_file_that_can_change_under_them(
    run: StackRun,
) -> None:
    """An env var is fixed at start; a mounted Secret (a whole directory, never subPath) is
    updated in place, and the runner reads the file again when it changes."""
    (sts,) = _pod_workloads(run, ("StatefulSet",))
    (runner,) = _containers(sts)
    env = {e["name"]: e for e in runner["env"]}
    assert "OPENAI_API_KEY" not in env
    path = env["OPENAI_API_KEY_FILE"]["value"]
    (mount,) = [m for m in runner["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert "subPath" not in mount and mount["readOnly"] is True
    (volume,) = [
        v for v in sts.get("spec", "template", "spec", "volumes") if v["name"] == mount["name"]
    ]
    assert volume["secret"]["secretName"] == "agentlane-openai-api-key"
    assert path.endswith("/" + volume["secret"]["items"][0]["path"])


def test_operators_run_audits_and_rebuilds_as_on_demand_jobs(run: StackRun) -> None:
    """`kubectl create job --from=cronjob/NAME` is the operator's way in: the database has no
    public address and the commands run with a workload's identity, read-only where they can."""
    jobs = {
        r.get("metadata", "name"): r
        for r in run.kubernetes()
        if r.inputs.get("kind") == "CronJob" and r.get("spec", "suspend")
    }
    expected = {
        "agentlane-verify": (["agentlane", "replay", "verify"], "anchor"),
        "agentlane-shards": (["agentlane", "shards"], "anchor"),
        "agentlane-rebuild": (["agentlane", "replay", "rebuild"], "migrate"),
    }
    assert set(jobs) == set(expected)
    for name, (command, identity) in expected.items():
        job = jobs[name].get("spec", "jobTemplate", "spec")
        pod = job["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == command
        assert jobs[name].get("metadata", "labels", "component") == identity
        assert pod["restartPolicy"] == "Never" and job["backoffLimit"] == 0
    anchor = run.kube_named("CronJob", "agentlane-anchor")
    assert not anchor.get("spec").get("suspend"), "the anchors are scheduled, not on demand"


def test_runner_statefulset_has_stable_names_and_drains(run: StackRun) -> None:
    (sts,) = _pod_workloads(run, ("StatefulSet",))
    service = run.kube_named("Service", sts.get("spec", "serviceName"))
    assert service.get("spec", "clusterIP") == "None"
    assert service.get("spec", "selector") == sts.get("spec", "selector", "matchLabels")
    (runner,) = _containers(sts)
    pod_name = next(e for e in runner["env"] if e["name"] == "POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    grace = sts.get("spec", "template", "spec", "terminationGracePeriodSeconds")
    drain = 30
    assert grace > runner["lifecycle"]["preStop"]["sleep"]["seconds"] + drain
    pdbs = [r for r in run.kubernetes() if r.inputs.get("kind") == "PodDisruptionBudget"]
    selectors = [p.get("spec", "selector", "matchLabels") for p in pdbs]
    assert sts.get("spec", "selector", "matchLabels") in selectors


def test_gateway_scales_and_keeps_websockets_open(run: StackRun) -> None:
    hpa = run.kube_named("HorizontalPodAutoscaler", "agentlane-gateway")
    assert hpa.get("spec", "minReplicas") >= 2
    deployment = run.kube_named("Deployment", "agentlane-gateway")
    assert "replicas" not in deployment.inputs["spec"], "the HPA owns the replica count"
    pdb = run.kube_named("PodDisruptionBudget", "agentlane-gateway")
    assert pdb.get("spec", "selector") == deployment.get("spec", "selector")
    # A share, not "minAvailable: 1": at 20 replicas that would let 19 go at once.
    assert pdb.get("spec", "maxUnavailable") == "10%" and "minAvailable" not in pdb.inputs["spec"]
    projector = run.kube_named("Deployment", "agentlane-projector")
    assert projector.get("spec", "replicas") == 2
    backends = {b.name: b for b in run.of_type("gcp:compute/backendService:BackendService")}
    assert backends["edge-gateway"].inputs["timeoutSec"] >= WEBSOCKET_TIMEOUT_SECONDS
    neg = json.loads(
        run.kube_named("Service", "agentlane-gateway").get(
            "metadata", "annotations", "cloud.google.com/neg"
        )
    )
    (neg_name,) = [p["name"] for p in neg["exposed_ports"].values()]
    groups = [b["group"] for b in backends["edge-gateway"].inputs["backends"]]
    assert groups and all(g.endswith(f"/networkEndpointGroups/{neg_name}") for g in groups)
    # One NEG in each zone the cluster reports for its nodes (no zone list to keep in sync).
    cluster = run.one("gcp:container/cluster:Cluster")
    zones = [g.split("/zones/")[1].split("/")[0] for g in groups]
    assert zones == sorted(f"{cluster.inputs['location']}-{z}" for z in ("f", "b", "c"))
    # Cost allocation on: the billing export splits GKE costs by namespace and label.
    assert cluster.inputs["costManagementConfig"] == {"enabled": True}


def test_load_balancer_routes_websockets_to_gateway_behind_armor(run: StackRun) -> None:
    backends = {b.name: b for b in run.of_type("gcp:compute/backendService:BackendService")}
    assert {b.inputs["securityPolicy"] for b in backends.values()} == {"edge-armor-id"}
    url_map = run.one("gcp:compute/uRLMap:URLMap", "edge")
    assert url_map.inputs["defaultService"] == "edge-command-id"
    (matcher,) = url_map.inputs["pathMatchers"]
    assert matcher["pathRules"] == [{"paths": ["/ws/*"], "service": "edge-gateway-id"}]
    neg = run.one("gcp:compute/regionNetworkEndpointGroup:RegionNetworkEndpointGroup")
    assert neg.inputs["networkEndpointType"] == "SERVERLESS"
    rules = run.one("gcp:compute/securityPolicy:SecurityPolicy").inputs["rules"]
    bans = sorted(
        (r for r in rules if r["action"] == "rate_based_ban"), key=lambda r: r["priority"]
    )
    # The first matching rule decides: the IP ban first, so a fresh header cannot skip it.
    assert [r["rateLimitOptions"]["enforceOnKey"] for r in bans] == ["IP", "HTTP_HEADER"]
    first = min(rules, key=lambda r: r["priority"])
    assert first["action"] == "deny(404)" and "metrics|readyz" in (
        first["match"]["expr"]["expression"]
    )
    assert {r["rateLimitOptions"]["exceedAction"] for r in bans} == {"deny(429)"}
    expressions = " ".join(r["match"].get("expr", {}).get("expression", "") for r in rules)
    assert "sqli-v33-stable" in expressions and "xss-v33-stable" in expressions


def test_workloads_roll_only_after_the_migration_job(run: StackRun) -> None:
    (job,) = _pod_workloads(run, ("Job",))
    for workload in _pod_workloads(run, ("Deployment", "StatefulSet")):
        assert job.urn in workload.dependencies, workload.name
    assert job.urn in run.one(CLOUD_RUN).dependencies


def test_every_kubernetes_resource_uses_the_gke_provider(run: StackRun) -> None:
    provider = run.one(K8S_PROVIDER)
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert run.kubernetes()
    for resource in run.kubernetes():
        assert resource.provider == provider.urn, resource.urn
        assert resource.get("metadata", "namespace") in (None, NAMESPACE)


def test_everything_that_takes_labels_has_them(run: StackRun) -> None:
    # DatabaseInstance keeps its labels in settings.userLabels, not a top-level argument.
    labelled = {t for t, args in run.label_args.items() if args} | {SQL}
    assert labelled <= set(LABEL_PATHS), "a labelled type is missing from the policy table"
    for resource in run.resources:
        if resource.type in LABEL_PATHS:
            labels = resource.get(*LABEL_PATHS[resource.type])
        elif resource.type.startswith("kubernetes:"):
            labels = resource.get("metadata", "labels")
        else:
            continue
        assert REQUIRED_LABELS <= set(labels), resource.urn
        assert labels["env"] == run.stack and labels["app"] == "agentlane"


def test_alert_policies_watch_the_agentlane_metrics(run: StackRun) -> None:
    policies = run.of_type("gcp:monitoring/alertPolicy:AlertPolicy")
    queries = " ".join(
        c["conditionPrometheusQueryLanguage"]["query"]
        for policy in policies
        for c in policy.inputs["conditions"]
    )
    docs = " ".join(p.inputs["documentation"]["content"] for p in policies)
    for name, kind in (
        ("agentlane_projector_lag_seconds", "gauge"),
        ("agentlane_transaction_horizon_age_seconds", "gauge"),
        ("agentlane_runs_finished_total", "counter"),
        ("agentlane_runner_owned_shards", "gauge"),
        ("agentlane_projector_leader", "gauge"),
    ):
        assert name in queries
        assert f"prometheus.googleapis.com/{name}/{kind}" in docs
    assert "agent-events-dead-letter-hold" in queries
    scraped = {
        r.get("spec", "selector", "matchLabels", "component")
        for r in run.kubernetes()
        if r.inputs.get("kind") == "PodMonitoring"
    }
    assert scraped == {"runner", "projector", "gateway"}


def test_the_policy_pack_passes_on_the_program(run: StackRun) -> None:
    found = {r.urn: v for r in run.resources if (v := violations(r.type, r.inputs))}
    assert found == {}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_files_leave_secrets_and_image_out(stack: str) -> None:
    content = (INFRA / f"Pulumi.{stack}.yaml").read_text()
    for key in ("agentlane:image", "agentlane:dbPassword", "agentlane:openaiApiKey"):
        assert f"\n  {key}:" not in content


def test_alerts_watch_series_the_components_really_export() -> None:
    """An alert on a metric nobody exports never fires; check the names against what the
    components create on a process's registry."""
    from prometheus_client import CollectorRegistry

    from command_service.metrics import CommandServiceMetrics
    from gateway.metrics import GatewayMetrics
    from infra.components.monitoring import stack_alerts
    from infra.config import RuntimeConfig
    from projector.metrics import ProjectorMetrics
    from runners.engine._metrics import EngineMetrics
    from runners.metrics import RunnerMetrics

    registry = CollectorRegistry()
    for metrics in (
        CommandServiceMetrics, GatewayMetrics, ProjectorMetrics, RunnerMetrics, EngineMetrics
    ):
        metrics(registry)
    used = {
        name
        for alert in stack_alerts(RuntimeConfig(jwt_audience="", model=""))
        for name in re.findall(r"agentlane_[a-z_]+", alert.query)
    }
    exported = set(registry._names_to_collectors)
    assert used and used <= exported, used - exported


def test_pods_take_ingress_only_from_the_load_balancer_and_the_metrics_collector(
    run: StackRun,
) -> None:
    kind = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
    policies = {p.name: p.inputs for p in run.of_type(kind)}
    deny = policies["deny-all-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"]
    assert "ingress" not in deny
    gateway = policies["gateway-ingress"]["spec"]
    sources = gateway["ingress"][0]["from"]
    cidrs = {s["ipBlock"]["cidr"] for s in sources if "ipBlock" in s}
    assert cidrs == set(LOAD_BALANCER_RANGES)
    for name in ("gateway-ingress", "runner-ingress", "projector-ingress"):
        (rule,) = policies[name]["spec"]["ingress"]
        scrapers = [s for s in rule["from"] if "namespaceSelector" in s]
        assert scrapers == [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "gmp-system"}}}], name
        assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}], name
    assert not any("ipBlock" in s for s in policies["runner-ingress"]["spec"]["ingress"][0]["from"])


def test_the_teardown_bucket_outlives_the_stack_and_takes_the_final_export(run: StackRun) -> None:
    bucket = run.one("gcp:storage/bucket:Bucket", "agentlane-teardown")
    assert bucket.inputs["name"].endswith("-teardown")
    assert bucket.inputs["uniformBucketLevelAccess"] is True
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    assert bucket.retain_on_delete, "destroy must leave the final export"
    retention = bucket.inputs["retentionPolicy"]
    assert int(retention["retentionPeriod"]) == 30 * 24 * 3600
    assert retention["isLocked"] is (run.stack == "prod")
    (writer,) = [
        m for m in run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
        if m.name == "agentlane-teardown-export"
    ]
    assert writer.inputs["role"] == "roles/storage.objectCreator"
    assert writer.inputs["member"].startswith("serviceAccount:") and "gcp-sa-cloud-sql" in (
        writer.inputs["member"]
    )


def test_a_stack_with_billing_gets_a_monthly_budget_alerting_its_channels() -> None:
    run = run_stacks(("staging",), {
        "agentlane:billing": {"account": "012345-6789AB-CDEF01", "projectNumber": "123456789",
                              "monthlyAmount": 600},
        "agentlane:notificationChannels": ["projects/p/notificationChannels/1"],
    })["staging"]
    (budget,) = run.of_type("gcp:billing/budget:Budget")
    assert budget.inputs["billingAccount"] == "012345-6789AB-CDEF01"
    assert budget.inputs["budgetFilter"]["projects"] == ["projects/123456789"]
    assert budget.inputs["amount"]["specifiedAmount"] == {"currencyCode": "USD", "units": "600"}
    assert [r["thresholdPercent"] for r in budget.inputs["thresholdRules"]] == [0.5, 0.9, 1, 1]
    assert budget.inputs["allUpdatesRule"]["monitoringNotificationChannels"] == [
        "projects/p/notificationChannels/1"
    ]
