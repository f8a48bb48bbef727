"""`build(config)`: the whole stack, wired in dependency order."""

from __future__ import annotations

import pulumi

from .components.anchors import Anchors
from .components.apis import Apis
from .components.armor import Armor
from .components.blobs import BlobStore
from .components.cluster import Cluster
from .components.command_service import CommandService
from .components.dashboard import Dashboard
from .components.database import Database
from .components.edge import Edge
from .components.gateway import Gateway
from .components.identity import ServiceAccounts, WorkloadIdentity
from .components.kube_base import KubeBase
from .components.migration import Migration
from .components.monitoring import Monitoring
from .components.names import ANCHOR, APP_LOGINS, COMMAND_SERVICE
from .components.network import Network
from .components.network_policies import NetworkPolicies
from .components.projector import Projector
from .components.pubsub import EventBus
from .components.registry import Registry
from .components.runners import Runners
from .components.secrets import Secrets
from .components.workload_env import (
    CA_FILE,
    SECRET_ANCHOR_KEY,
    SECRET_DATABASE_CA,
    SECRET_DATABASE_URL,
    SECRET_OPENAI_API_KEY,
)
from .config import StackConfig

__all__ = ["build"]

# Kept in Secret Manager for operators (psql, rotation); no workload reads it.
SECRET_DB_PASSWORD = "db-password"
# Who reads which secret from Secret Manager directly. GKE pods read the projected Kubernetes
# Secrets instead, so their accounts need no accessor role. The command service logs in to the
# database with its IAM identity: it reads only the CA.
SECRET_READERS = {SECRET_DATABASE_CA: (COMMAND_SERVICE,)}
PROJECTED_SECRETS = (SECRET_DATABASE_URL, SECRET_OPENAI_API_KEY, SECRET_ANCHOR_KEY)


def build(config: StackConfig) -> None:
    """Declare every resource of the stack described by `config`."""
    apis = Apis("apis", config)
    after_apis = pulumi.ResourceOptions(depends_on=[apis])
    accounts = ServiceAccounts("accounts", config, after_apis)
    network = Network("agentlane", config, after_apis)
    registry = Registry("registry", config, accounts, after_apis)
    database = Database("agentlane", config, network, accounts, after_apis)
    secrets = Secrets(
        "secrets",
        config,
        {
            SECRET_DB_PASSWORD: config.secrets.db_password,
            SECRET_DATABASE_URL: database.url,
            SECRET_OPENAI_API_KEY: config.secrets.openai_api_key,
            SECRET_ANCHOR_KEY: config.secrets.anchor_signing_key,
            SECRET_DATABASE_CA: database.ca_pem,
        },
        SECRET_READERS,
        accounts,
        after_apis,
    )
    bus = EventBus("events", config, accounts, after_apis)
    cluster = Cluster("agentlane", config, network, accounts, after_apis)
    identity = WorkloadIdentity(
        "workload-identity", config, accounts, pulumi.ResourceOptions(depends_on=[cluster.cluster])
    )
    kube = KubeBase(
        "kubernetes",
        config,
        cluster.provider,
        accounts,
        {logical: secrets.versions[logical].secret_data for logical in PROJECTED_SECRETS},
        {
            **{w.component: database.url_for(w) for w in (*APP_LOGINS, ANCHOR) if w.on_gke},
            CA_FILE: database.ca_pem,
        },
    )
    NetworkPolicies(
        "network-policies", config, cluster.provider, pulumi.ResourceOptions(depends_on=kube.ready)
    )
    migration = Migration(
        "migration",
        config,
        cluster.provider,
        [database.logins[w] for w in APP_LOGINS],
        [database.logins[ANCHOR]],
        pulumi.ResourceOptions(depends_on=[*kube.ready, database.user, *database.iam_users]),
    )
    # Nothing rolls onto a schema the migration has not applied yet.
    rollout = pulumi.ResourceOptions(depends_on=[migration.job, *kube.ready, identity])
    Runners("runners", config, cluster.provider, rollout)
    Projector("projector", config, cluster.provider, rollout)
    gateway = Gateway("gateway", config, cluster.provider, rollout)
    anchors = Anchors("anchors", config, cluster.provider, accounts, rollout)
    blobs = BlobStore("blobs", config, cluster.provider, accounts, rollout)
    command = CommandService(
        "command-service",
        config,
        network,
        accounts,
        database.url_for(COMMAND_SERVICE),
        [secrets],
        pulumi.ResourceOptions(depends_on=[apis, migration.job]),
    )
    armor = Armor("edge-armor", config, after_apis)
    edge = Edge(
        "edge", config, command, armor, gateway.service, cluster.cluster.node_locations,
        after_apis,
    )
    Monitoring("alerts", config, after_apis)
    Dashboard("dashboard", config, after_apis)

    pulumi.export("url", edge.url)
    pulumi.export("address", edge.address.address)
    pulumi.export("image", config.image)
    pulumi.export("registry", registry.repository.registry_uri)
    pulumi.export("cloudSqlInstance", database.instance.name)
    pulumi.export("teardownBucket", database.teardown_bucket.name)
    pulumi.export("cloudSqlPrivateIp", database.instance.private_ip_address)
    pulumi.export("clusterName", cluster.cluster.name)
    pulumi.export("kubeconfig", pulumi.Output.secret(cluster.kubeconfig))
    pulumi.export("topic", bus.topic.name)
    pulumi.export("anchorBucket", anchors.bucket.name)
    pulumi.export("blobBucket", blobs.bucket.name)
