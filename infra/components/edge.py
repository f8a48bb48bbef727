"""The external HTTPS load balancer: `/ws/*` to the GKE gateway, everything else to Cloud Run.

One address and one certificate serve both, so browsers see a single origin for HTTP and
WebSocket (as `agentlane dev` does on one port).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .armor import Armor
from .base import Component
from .command_service import CommandService
from .names import gateway_neg_name
from .workload_env import HTTP_PORT

__all__ = ["WEBSOCKET_TIMEOUT_SECONDS", "Edge"]

# The backend timeout is the longest a WebSocket may stay open through the LB.
WEBSOCKET_TIMEOUT_SECONDS = 3600
SCHEME = "EXTERNAL_MANAGED"


class Edge(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        command: CommandService,
        armor: Armor,
        gateway_service: pulumi.Resource,
        node_zones: pulumi.Input[Sequence[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("Edge", name, config, opts)
        self.address = gcp.compute.GlobalAddress(
            f"{name}-ip",
            name=f"{name}-ip-{config.stack}",
            labels=self.labels("edge"),
            opts=self.child(),
        )
        certificate = gcp.compute.ManagedSslCertificate(
            f"{name}-cert",
            name=f"{name}-cert-{config.stack}",
            managed={"domains": [config.domain]},
            opts=self.child(),
        )
        serverless_neg = gcp.compute.RegionNetworkEndpointGroup(
            f"{name}-command-neg",
            name=f"{name}-command-{config.stack}",
            region=config.region,
            network_endpoint_type="SERVERLESS",
            cloud_run={"service": command.service.name},
            opts=self.child(),
        )
        command_backend = gcp.compute.BackendService(
            f"{name}-command",
            name=f"{name}-command-{config.stack}",
            load_balancing_scheme=SCHEME,
            protocol="HTTPS",
            backends=[{"group": serverless_neg.id}],
            security_policy=armor.policy.id,
            log_config={"enable": True, "sample_rate": 1.0},
            opts=self.child(),
        )
        health = gcp.compute.HealthCheck(
            f"{name}-gateway-ready",
            name=f"{name}-gateway-ready-{config.stack}",
            http_health_check={"port": HTTP_PORT, "request_path": "/readyz"},
            opts=self.child(),
        )
        neg = gateway_neg_name(config.stack)

        def negs(zones: Sequence[str]) -> list[dict[str, Any]]:
            return [
                {
                    # GKE names these NEGs after the Service annotation (gateway.py), one in
                    # each zone the cluster's nodes may run in.
                    "group": f"projects/{config.project}/zones/{zone}/networkEndpointGroups/{neg}",
                    "balancing_mode": "RATE",
                    "max_rate_per_endpoint": 100,
                }
                for zone in sorted(zones)
            ]

        # The zones the cluster reports, unless the stack names them (negZones).
        zones = config.neg_zones or node_zones
        gateway_backend = gcp.compute.BackendService(
            f"{name}-gateway",
            name=f"{name}-gateway-{config.stack}",
            load_balancing_scheme=SCHEME,
            protocol="HTTP",
            timeout_sec=WEBSOCKET_TIMEOUT_SECONDS,
            connection_draining_timeout_sec=30,
            health_checks=health.id,
            backends=pulumi.Output.from_input(zones).apply(negs),
            security_policy=armor.policy.id,
            log_config={"enable": True, "sample_rate": 1.0},
            opts=self.child(depends_on=[gateway_service]),
        )
        url_map = gcp.compute.URLMap(
            name,
            name=f"{name}-{config.stack}",
            default_service=command_backend.id,
            host_rules=[{"hosts": ["*"], "path_matcher": "agentlane"}],
            path_matchers=[
                {
                    "name": "agentlane",
                    "default_service": command_backend.id,
                    "path_rules": [{"paths": ["/ws/*"], "service": gateway_backend.id}],
                }
            ],
            opts=self.child(),
        )
        https_proxy = gcp.compute.TargetHttpsProxy(
            f"{name}-https",
            name=f"{name}-https-{config.stack}",
            url_map=url_map.id,
            ssl_certificates=[certificate.id],
            opts=self.child(),
        )
        self._forwarding_rule(f"{name}-https", "443", https_proxy)
        redirect = gcp.compute.URLMap(
            f"{name}-redirect",
            name=f"{name}-redirect-{config.stack}",
            default_url_redirect={"https_redirect": True, "strip_query": False},
            opts=self.child(),
        )
        http_proxy = gcp.compute.TargetHttpProxy(
            f"{name}-http",
            name=f"{name}-http-{config.stack}",
            url_map=redirect.id,
            opts=self.child(),
        )
        self._forwarding_rule(f"{name}-http", "80", http_proxy)
        self.url = pulumi.Output.concat("https://", config.domain)
        self.register_outputs({"address": self.address.address})

    def _forwarding_rule(
        self,
        name: str,
        port_range: str,
        proxy: gcp.compute.TargetHttpsProxy | gcp.compute.TargetHttpProxy,
    ) -> gcp.compute.GlobalForwardingRule:
        """A listener on the one address: HTTPS serves, HTTP only redirects to it."""
        return gcp.compute.GlobalForwardingRule(
            name,
            name=f"{name}-{self._config.stack}",
            load_balancing_scheme=SCHEME,
            ip_address=self.address.id,
            port_range=port_range,
            target=proxy.id,
            labels=self.labels("edge"),
            opts=self.child(),
        )
