"""Cloud SQL Postgres 18 on a private IP only, TLS verified, and who logs in as what.

- The built-in password user ``agentlane`` owns the schema; only the migration Job logs in as it.
- Every other workload logs in as its own service account's Cloud SQL IAM user, with an access
  token for a password (``AGENTLANE_DB_IAM_AUTH``), so no password of theirs exists; the
  migration makes each a member of the app role, and the anchor CronJob's of the auditor role
  (`agentlane migrate --app-login/--audit-login`, docs/security.md).
- Clients verify the server (``sslmode=verify-full``): the instance's certificates come from a
  per-instance CA (``GOOGLE_MANAGED_CAS_CA``) and name its DNS name, which a private zone
  resolves to the private IP; the CA is mounted into every pod at :data:`CA_PATH`.
"""

from __future__ import annotations

from urllib.parse import quote

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .identity import ServiceAccounts, member
from .names import ANCHOR, APP_LOGINS, Workload
from .network import Network
from .workload_env import CA_PATH

__all__ = ["Database", "iam_login"]

DATABASE = "agentlane"
USER = "agentlane"
_TLS = f"sslmode=verify-full&sslrootcert={CA_PATH}"


def iam_login(email: str) -> str:
    """The Cloud SQL IAM database user of a service account: its email without the suffix."""
    return email.removesuffix(".gserviceaccount.com")


#: How long a final export in the teardown bucket cannot be deleted or replaced (30 days).
TEARDOWN_RETENTION_S = 30 * 24 * 3600

class Database(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        network: Network,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Database", name, config, opts)
        db = config.database
        protect = config.deletion_protection
        self.instance = gcp.sql.DatabaseInstance(
            name,
            name=f"{name}-{config.stack}",
            region=config.region,
            # The major the suite runs on (the embedded server) and compose.yml runs.
            database_version="POSTGRES_18",
            # Two guards in prod: Pulumi refuses to delete, and so does the Cloud SQL API.
            deletion_protection=protect,
            settings={
                # ENTERPRISE_PLUS (the default for new Postgres 16+ instances) rejects
                # db-custom-* tiers.
                "edition": "ENTERPRISE",
                "tier": db.tier,
                "availability_type": "REGIONAL" if db.high_availability else "ZONAL",
                "deletion_protection_enabled": protect,
                "disk_size": db.disk_size_gb,
                "disk_autoresize": True,
                "disk_type": "PD_SSD",
                "ip_configuration": {
                    "ipv4_enabled": False,
                    "private_network": network.vpc.id,
                    "ssl_mode": "ENCRYPTED_ONLY",
                    # Certificates that name the instance's DNS name: verify-full can check it.
                    "server_ca_mode": "GOOGLE_MANAGED_CAS_CA",
                },
                "backup_configuration": {
                    "enabled": True,
                    "point_in_time_recovery_enabled": True,
                    "transaction_log_retention_days": min(db.backup_retention_days, 7),
                    "backup_retention_settings": {
                        "retained_backups": db.backup_retention_days,
                        "retention_unit": "COUNT",
                    },
                },
                "database_flags": [
                    # One idle transaction holds the tail's horizon for every consumer.
                    {
                        "name": "idle_in_transaction_session_timeout",
                        "value": str(db.idle_in_transaction_timeout_ms),
                    },
                    {"name": "statement_timeout", "value": str(db.statement_timeout_ms)},
                    # Set, not the tier's default: the budget the stack was checked against.
                    {"name": "max_connections", "value": str(db.max_connections)},
                    # Workloads log in as IAM users with tokens, not passwords.
                    {"name": "cloudsql.iam_authentication", "value": "on"},
                ],
                "insights_config": {"query_insights_enabled": True},
                "maintenance_window": {"day": 7, "hour": 3, "update_track": "stable"},
                "user_labels": self.labels("database"),
            },
            # The peering carries no value the instance reads, so Pulumi cannot infer this
            # order; without it the create hangs and fails (seed module 24).
            opts=self.child(depends_on=[network.peering]),
        )
        # Postgres refuses to drop a role that owns objects or a database with sessions; both
        # go with the instance, so a destroy leaves them to it instead of failing first.
        self.database = gcp.sql.Database(
            DATABASE,
            name=DATABASE,
            instance=self.instance.name,
            deletion_policy="ABANDON",
            opts=self.child(),
        )
        self.user = gcp.sql.User(
            USER,
            name=USER,
            instance=self.instance.name,
            password=config.secrets.db_password,
            deletion_policy="ABANDON",
            opts=self.child(depends_on=[self.database]),
        )
        self.host = self.instance.dns_name.apply(lambda name: name.rstrip("."))
        zone = gcp.dns.ManagedZone(
            f"{name}-sql",
            name=f"{name}-sql-{config.stack}",
            dns_name=self.instance.dns_name,
            visibility="private",
            private_visibility_config={"networks": [{"network_url": network.vpc.id}]},
            description="The Cloud SQL instance's DNS name, for verify-full TLS",
            labels=self.labels("database"),
            opts=self.child(),
        )
        gcp.dns.RecordSet(
            f"{name}-sql",
            managed_zone=zone.name,
            name=self.instance.dns_name,
            type="A",
            ttl=300,
            rrdatas=[self.instance.private_ip_address],
            opts=self.child(),
        )
        self.ca_pem: pulumi.Output[str] = self.instance.server_ca_certs.apply(
            lambda certs: "".join(cert.cert or "" for cert in certs or [])
        )
        # The owner's URL: the migration Job's, and the only one with a password.
        self.url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(self.host, config.secrets.db_password).apply(
                lambda args: (
                    f"postgresql://{USER}:{quote(args[1], safe='')}@{args[0]}:5432/{DATABASE}"
                    f"?{_TLS}"
                )
            )
        )
        self.logins: dict[Workload, pulumi.Output[str]] = {}
        self.iam_users: list[gcp.sql.User] = []
        for workload in (*APP_LOGINS, ANCHOR):
            account = accounts.workloads[workload]
            self.logins[workload] = account.email.apply(iam_login)
            self.iam_users.append(
                gcp.sql.User(
                    f"{name}-{workload.component}",
                    name=self.logins[workload],
                    instance=self.instance.name,
                    type="CLOUD_IAM_SERVICE_ACCOUNT",
                    deletion_policy="ABANDON",
                    opts=self.child(depends_on=[self.database]),
                )
            )
            # Logging in needs cloudsql.instances.login; the condition keeps it to this instance.
            gcp.projects.IAMMember(
                f"{name}-{workload.component}-login",
                project=config.project,
                role="roles/cloudsql.instanceUser",
                member=member(account),
                condition={
                    "title": "this instance only",
                    "expression": self.instance.name.apply(
                        lambda instance: (
                            'resource.type == "sqladmin.googleapis.com/Instance" && '
                            f'resource.name == "projects/{config.project}/instances/{instance}"'
                        )
                    ),
                },
                opts=self.child(),
            )
        # Where the final export goes before a teardown (infra/README.md): Cloud SQL deletes its
        # own backups with the instance. Kept when the stack is destroyed (retain_on_delete), so
        # the export outlives everything else; the instance's own account may write to it.
        self.teardown_bucket = gcp.storage.Bucket(
            f"{name}-teardown",
            name=f"{config.project}-{config.stack}-teardown",
            location=config.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning={"enabled": True},
            # A final export cannot be deleted or replaced for 30 days (locked where the stack
            # is guarded against deletion: nobody can shorten it).
            retention_policy={
                "retention_period": str(TEARDOWN_RETENTION_S),
                "is_locked": config.deletion_protection,
            },
            labels=self.labels("database"),
            opts=pulumi.ResourceOptions.merge(
                self.child(), pulumi.ResourceOptions(retain_on_delete=True)
            ),
        )
        gcp.storage.BucketIAMMember(
            f"{name}-teardown-export",
            bucket=self.teardown_bucket.name,
            role="roles/storage.objectCreator",
            member=self.instance.service_account_email_address.apply(
                lambda email: f"serviceAccount:{email}"
            ),
            opts=self.child(),
        )
        self.register_outputs({"instance": self.instance.name})

    def url_for(self, workload: Workload) -> pulumi.Output[str]:
        """A workload's URL: its IAM login, no password (the token is the password)."""
        return pulumi.Output.all(self.logins[workload], self.host).apply(
            lambda args: (
                f"postgresql://{quote(args[0], safe='')}@{args[1]}:5432/{DATABASE}?{_TLS}"
            )
        )
