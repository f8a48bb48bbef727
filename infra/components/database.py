"""Cloud SQL Postgres 18 on a private IP only, TLS required, with the role the components use."""

from __future__ import annotations

from urllib.parse import quote

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .network import Network

__all__ = ["Database"]

DATABASE = "agentlane"
USER = "agentlane"


class Database(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        network: Network,
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
        self.url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(self.instance.private_ip_address, config.secrets.db_password).apply(
                lambda args: (
                    f"postgresql://{USER}:{quote(args[1], safe='')}@{args[0]}:5432/{DATABASE}"
                    "?sslmode=require"
                )
            )
        )
        self.register_outputs({"instance": self.instance.name})
