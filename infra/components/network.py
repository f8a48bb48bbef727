"""VPC, subnet with GKE secondary ranges, private services access, Cloud NAT, LB health checks."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component

__all__ = ["Network"]

NODES_CIDR = "10.10.0.0/20"
PODS_RANGE = "pods"
PODS_CIDR = "10.64.0.0/14"
SERVICES_RANGE = "services"
SERVICES_CIDR = "10.68.0.0/20"
# Google's health checkers and the global external LB's proxies reach pods (NEG endpoints) here.
LB_HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")


class Network(Component):
    def __init__(
        self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("Network", name, config, opts)
        self.vpc = gcp.compute.Network(
            name,
            name=name,
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=self.child(),
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-{config.region}",
            name=f"{name}-{config.region}",
            region=config.region,
            network=self.vpc.id,
            ip_cidr_range=NODES_CIDR,
            private_ip_google_access=True,
            secondary_ip_ranges=[
                {"range_name": PODS_RANGE, "ip_cidr_range": PODS_CIDR},
                {"range_name": SERVICES_RANGE, "ip_cidr_range": SERVICES_CIDR},
            ],
            opts=self.child(),
        )
        # Private services access: Cloud SQL gets its private IP from this peered range.
        self.peering_range = gcp.compute.GlobalAddress(
            f"{name}-psa",
            name=f"{name}-psa",
            purpose="VPC_PEERING",
            address_type="INTERNAL",
            prefix_length=16,
            network=self.vpc.id,
            labels=self.labels("network"),
            opts=self.child(),
        )
        self.peering = gcp.servicenetworking.Connection(
            f"{name}-psa",
            network=self.vpc.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[self.peering_range.name],
            opts=self.child(),
        )
        # Private nodes have no external IPs; runners still call the model API on the internet.
        router = gcp.compute.Router(
            f"{name}-router",
            name=f"{name}-router",
            region=config.region,
            network=self.vpc.id,
            opts=self.child(),
        )
        gcp.compute.RouterNat(
            f"{name}-nat",
            name=f"{name}-nat",
            region=config.region,
            router=router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config={"enable": True, "filter": "ERRORS_ONLY"},
            opts=self.child(),
        )
        gcp.compute.Firewall(
            f"{name}-allow-lb-health-checks",
            name=f"{name}-allow-lb-health-checks",
            network=self.vpc.id,
            direction="INGRESS",
            source_ranges=list(LB_HEALTH_CHECK_RANGES),
            allows=[{"protocol": "tcp", "ports": ["8080"]}],
            opts=self.child(),
        )
        self.register_outputs({"network": self.vpc.id, "subnet": self.subnet.id})
