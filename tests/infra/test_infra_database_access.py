"""Who logs in to the database as what, and the anchors, in the mocked program of every stack:
each workload but the migration logs in as its own Cloud SQL IAM user (no password anywhere in its
environment), verifies the server (verify-full against the mounted CA, by the DNS name a private
zone resolves), and the migration grants each login its role; the anchor CronJob writes to a
bucket it can only add to, under a retention policy locked in prod."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from infra.components.names import ANCHOR, APP_LOGINS
from tests.infra.infra_resources import Resource, StackRun

SQL = "gcp:sql/databaseInstance:DatabaseInstance"
DNS_NAME = "0123456789ab.abcdef012345.us-central1.sql.goog"
CA_PATH = "/etc/agentlane/db-ca/ca.pem"


def _login(run: StackRun, component: str) -> str:
    return f"agentlane-{component}@{run.project}.iam"


def _check_iam_url(url: str, login: str) -> None:
    parts = urlsplit(url)
    assert unquote(parts.username or "") == login
    assert parts.password is None
    assert parts.hostname == DNS_NAME and parts.port == 5432 and parts.path == "/agentlane"
    assert parts.query == f"sslmode=verify-full&sslrootcert={CA_PATH}"


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def _pod(resource: Resource) -> dict:
    template = resource.get("spec", "jobTemplate", "spec", "template") or resource.get(
        "spec", "template"
    )
    return template["spec"]


def test_the_instance_takes_iam_logins_and_names_itself_in_its_certificates(
    run: StackRun,
) -> None:
    db = run.one(SQL)
    flags = {f["name"]: f["value"] for f in db.get("settings", "databaseFlags")}
    assert flags["cloudsql.iam_authentication"] == "on"
    assert db.get("settings", "ipConfiguration", "serverCaMode") == "GOOGLE_MANAGED_CAS_CA"
    zone = run.one("gcp:dns/managedZone:ManagedZone")
    assert zone.inputs["visibility"] == "private" and zone.inputs["dnsName"] == DNS_NAME + "."
    record = run.one("gcp:dns/recordSet:RecordSet")
    assert record.inputs["name"] == DNS_NAME + "." and record.inputs["rrdatas"] == ["10.100.0.3"]


def test_every_workload_but_the_migration_logs_in_as_its_own_iam_user(run: StackRun) -> None:
    users = {
        u.inputs["name"]: u for u in run.of_type("gcp:sql/user:User")
        if u.inputs.get("type") == "CLOUD_IAM_SERVICE_ACCOUNT"
    }
    expected = {_login(run, w.component) for w in (*APP_LOGINS, ANCHOR)}
    assert set(users) == expected
    logins = [
        r for r in run.of_type("gcp:projects/iAMMember:IAMMember")
        if r.inputs["role"] == "roles/cloudsql.instanceUser"
    ]
    assert {r.inputs["member"].removeprefix("serviceAccount:") for r in logins} == {
        f"{login}.gserviceaccount.com" for login in expected
    }
    for grant in logins:  # only this instance, not every instance in the project
        assert 'resource.name == "projects/' in grant.inputs["condition"]["expression"]

    config = run.kube_named("ConfigMap", "agentlane-database").inputs["data"]
    assert config["ca.pem"].startswith("-----BEGIN CERTIFICATE-----")
    workloads = [
        r for r in run.kubernetes()
        if r.inputs.get("kind") in ("Deployment", "StatefulSet", "Job", "CronJob")
    ]
    # runner, projector, gateway, migrate, anchor, the blob collector; and the operator's
    # on-demand jobs.
    assert len(workloads) == 9
    for workload in workloads:
        pod = _pod(workload)
        (container,) = pod["containers"]
        env = _env(container)
        component = workload.get("metadata", "labels", "component")
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["db-ca"] == "/etc/agentlane/db-ca"
        (ca_volume,) = [v for v in pod["volumes"] if v["name"] == "db-ca"]
        assert ca_volume["configMap"]["name"] == "agentlane-database"
        if component == "migrate":
            ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "agentlane-database-url"
            assert "AGENTLANE_DB_IAM_AUTH" not in env
            continue
        ref = env["DATABASE_URL"]["valueFrom"]["configMapKeyRef"]
        assert ref == {"name": "agentlane-database", "key": component}
        _check_iam_url(config[component], _login(run, component))
        assert env["AGENTLANE_DB_IAM_AUTH"]["value"] == "true"
        assert not any(
            v.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "agentlane-database-url"
            for v in env.values()
        )

    service = run.one("gcp:cloudrunv2/service:Service")
    (container,) = [
        c for c in service.inputs["template"]["containers"] if c["name"] == "command-service"
    ]
    envs = {e["name"]: e for e in container["envs"]}
    _check_iam_url(envs["DATABASE_URL"]["value"], _login(run, "command-service"))
    assert envs["AGENTLANE_DB_IAM_AUTH"]["value"] == "true"
    (volume,) = service.inputs["template"]["volumes"]
    assert volume["secret"]["secret"] == "agentlane-database-ca"
    assert container["volumeMounts"] == [{"name": "db-ca", "mountPath": "/etc/agentlane/db-ca"}]


def test_the_owner_url_is_the_migrations_alone_and_verifies_the_server(run: StackRun) -> None:
    secret = run.kube_named("Secret", "agentlane-database-url")
    url = urlsplit(secret.inputs["stringData"]["DATABASE_URL"])
    assert url.username == "agentlane" and url.password
    assert url.hostname == DNS_NAME
    assert url.query == f"sslmode=verify-full&sslrootcert={CA_PATH}"
    readers = [
        g for g in run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
        if g.inputs["secretId"].endswith("/agentlane-database-url")
    ]
    assert readers == []  # Cloud Run no longer reads it


def test_the_migration_grants_each_login_its_role_after_the_users_exist(run: StackRun) -> None:
    (job,) = [r for r in run.kubernetes() if r.inputs.get("kind") == "Job"]
    command = _pod(job)["containers"][0]["command"]
    pairs = list(zip(command[2::2], command[3::2], strict=True))
    assert sorted(pairs) == sorted(
        [("--app-login", _login(run, w.component)) for w in APP_LOGINS]
        + [("--audit-login", _login(run, "anchor"))]
    )
    users = [u.urn for u in run.of_type("gcp:sql/user:User")]
    assert set(users) <= set(job.dependencies) or _depends_through_parent(run, job, users)


def _depends_through_parent(run: StackRun, job: Resource, urns: list[str]) -> bool:
    parent = next(r for r in run.resources if r.urn == job.parent)
    return set(urns) <= set(parent.dependencies)


def test_anchors_go_to_a_bucket_the_writer_can_only_add_to(run: StackRun) -> None:
    bucket = run.one("gcp:storage/bucket:Bucket", "anchors")
    assert bucket.inputs["name"] == f"{run.project}-agentlane-anchors-{run.stack}"
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    retention = bucket.inputs["retentionPolicy"]
    assert int(retention["retentionPeriod"]) >= 86400
    assert retention["isLocked"] is (run.stack == "prod")
    (grant,) = [
        g for g in run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
        if g.inputs["bucket"] == bucket.inputs["name"]
    ]
    assert grant.inputs["role"] == "roles/storage.objectCreator"
    assert grant.inputs["member"] == f"serviceAccount:{_login(run, 'anchor')}.gserviceaccount.com"

    cron = run.kube_named("CronJob", "agentlane-anchor")
    assert cron.get("spec", "concurrencyPolicy") == "Forbid"
    pod = _pod(cron)
    assert pod["serviceAccountName"] == "anchor"
    (container,) = pod["containers"]
    assert container["command"] == [
        "agentlane", "replay", "anchor", "--out", f"gs://{bucket.inputs['name']}/{run.stack}"
    ]
    key = _env(container)["AGENTLANE_ANCHOR_KEY"]["valueFrom"]["secretKeyRef"]
    assert key == {"name": "agentlane-anchor-key", "key": "AGENTLANE_ANCHOR_KEY"}


def test_blobs_go_to_a_bucket_writers_cannot_delete_from(run: StackRun) -> None:
    bucket = run.one("gcp:storage/bucket:Bucket", "blobs")
    name = bucket.inputs["name"]
    assert name == f"{run.project}-agentlane-blobs-{run.stack}"
    assert bucket.inputs["publicAccessPrevention"] == "enforced"
    # The bucket itself keeps every blob its first day: the collector's grace period.
    assert bucket.inputs["retentionPolicy"]["retentionPeriod"] == "86400"
    assert bucket.inputs["retentionPolicy"]["isLocked"] is (run.stack == "prod")
    assert bucket.retain_on_delete, "a destroy must not take the only copy of the values"
    role = run.one("gcp:projects/iAMCustomRole:IAMCustomRole", "blob-writer")
    assert sorted(role.inputs["permissions"]) == [
        "storage.objects.create", "storage.objects.get", "storage.objects.update"
    ]
    grants = {
        g.inputs["member"]: g.inputs["role"]
        for g in run.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
        if g.inputs["bucket"] == name
    }
    writers = {"command-service", "gateway", "runner"}
    assert grants == {
        **{f"serviceAccount:{_login(run, w)}.gserviceaccount.com": grants[
            f"serviceAccount:{_login(run, w)}.gserviceaccount.com"] for w in writers},
        f"serviceAccount:{_login(run, 'anchor')}.gserviceaccount.com": "roles/storage.objectUser",
    }
    assert all(grants[f"serviceAccount:{_login(run, w)}.gserviceaccount.com"] != (
        "roles/storage.objectUser") for w in writers)

    cron = run.kube_named("CronJob", "agentlane-blobs-gc")
    pod = _pod(cron)
    assert pod["serviceAccountName"] == "anchor"  # the auditor's login: reads, never writes
    (container,) = pod["containers"]
    assert container["command"] == ["agentlane", "blobs", "gc"]
    assert _env(container)["AGENTLANE_BLOB_STORE"]["value"] == f"gs://{name}"
