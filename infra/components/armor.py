"""Cloud Armor in front of the command service and the gateway: WAF rules and rate bans that
answer 429 before a request can cost a model call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component

if TYPE_CHECKING:
    # Annotations only: importing pulumi_gcp.compute at module load is slow and warns.
    from pulumi_gcp.compute import SecurityPolicyRuleArgsDict as Rule
    from pulumi_gcp.compute import SecurityPolicyRuleMatchArgsDict as Match
    from pulumi_gcp.compute import SecurityPolicyRuleRateLimitOptionsArgsDict as RateLimit

__all__ = ["PRECONFIGURED_WAF", "Armor"]

PRECONFIGURED_WAF = ("sqli-v33-stable", "xss-v33-stable")
INTERNAL_PATHS_EXPRESSION = "request.path.matches('^/(metrics|readyz|healthz)([/?].*)?$')"
DEFAULT_RULE_PRIORITY = 2147483647
_EVERYONE: Match = {
    "versioned_expr": "SRC_IPS_V1",
    "config": {"src_ip_ranges": ["*"]},
}


def _rate_ban(
    requests_per_minute: int, ban_seconds: int, key: str, key_name: str | None = None
) -> RateLimit:
    return {
        "conform_action": "allow",
        "exceed_action": "deny(429)",
        "rate_limit_threshold": {"count": requests_per_minute, "interval_sec": 60},
        # Clients that keep exceeding twice the limit are shut out for ban_seconds.
        "ban_threshold": {"count": 2 * requests_per_minute, "interval_sec": 120},
        "ban_duration_sec": ban_seconds,
        "enforce_on_key": key,
        "enforce_on_key_name": key_name,
    }


class Armor(Component):
    def __init__(
        self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("Armor", name, config, opts)
        armor = config.armor
        waf: list[Rule] = [
            {
                "priority": 1000 + index,
                "action": "deny(403)",
                "description": f"preconfigured WAF {rule}",
                "match": {"expr": {"expression": f"evaluatePreconfiguredWaf('{rule}')"}},
            }
            for index, rule in enumerate(PRECONFIGURED_WAF)
        ]
        header = armor.tenant_header.lower()
        # Cloud Armor stops at the first rule that matches, and a request under a rate rule's
        # limit is allowed right there: the per-IP ban comes first, so a client cannot skip it by
        # sending a new tenant header with every request (the app limits verified tenants).
        rate: list[Rule] = [
            {
                "priority": 2000,
                "action": "rate_based_ban",
                "description": "per-IP rate ban",
                "match": _EVERYONE,
                "rate_limit_options": _rate_ban(
                    armor.ip_requests_per_minute, armor.ban_seconds, key="IP"
                ),
            },
            {
                "priority": 2100,
                "action": "rate_based_ban",
                "description": "per-tenant rate ban",
                # Without the header the key falls back to one shared bucket, so only
                # requests that carry it are counted here.
                "match": {"expr": {"expression": f"has(request.headers['{header}'])"}},
                "rate_limit_options": _rate_ban(
                    armor.tenant_requests_per_minute,
                    armor.ban_seconds,
                    key="HTTP_HEADER",
                    key_name=header,
                ),
            },
        ]
        # Operators' endpoints are scraped and probed inside the VPC, never through the public
        # load balancer.
        internal: Rule = {
            "priority": 900,
            "action": "deny(404)",
            "description": "metrics and probes stay internal",
            "match": {"expr": {"expression": INTERNAL_PATHS_EXPRESSION}},
        }
        default: Rule = {
            "priority": DEFAULT_RULE_PRIORITY,
            "action": "allow",
            "description": "default",
            "match": _EVERYONE,
        }
        self.policy = gcp.compute.SecurityPolicy(
            name,
            name=f"{name}-{config.stack}",
            type="CLOUD_ARMOR",
            rules=[internal, *waf, *rate, default],
            labels=self.labels("edge"),
            opts=self.child(),
        )
        self.register_outputs({"policy": self.policy.id})
