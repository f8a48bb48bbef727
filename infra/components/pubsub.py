"""The event fan-out topic, its dead-letter topic, and who may publish or subscribe.

Gateways (and the command service's SSE) create one expiring subscription per process at run
time, so their subscriber rights are a custom role with only what that takes.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from ..config import StackConfig
from .base import Component
from .identity import ServiceAccounts, member
from .names import COMMAND_SERVICE, GATEWAY, PROJECTOR

__all__ = ["LIVE_SUBSCRIBER_PERMISSIONS", "EventBus", "dead_letter_hold_name"]

LIVE_SUBSCRIBER_PERMISSIONS = (
    "pubsub.subscriptions.consume",
    "pubsub.subscriptions.create",
    "pubsub.subscriptions.delete",
    "pubsub.subscriptions.get",
    "pubsub.topics.attachSubscription",
)
DEAD_LETTER_SUFFIX = "-dead-letter"


def dead_letter_hold_name(topic: str) -> str:
    """The subscription that keeps ``topic``'s dead letters for an operator."""
    return f"{topic}{DEAD_LETTER_SUFFIX}-hold"
MAX_DELIVERY_ATTEMPTS = 10


class EventBus(Component):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        accounts: ServiceAccounts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("EventBus", name, config, opts)
        topic_name = config.runtime.topic
        labels = self.labels("pubsub")
        self.topic = gcp.pubsub.Topic(topic_name, name=topic_name, labels=labels, opts=self.child())
        self.dead_letter = gcp.pubsub.Topic(
            f"{topic_name}{DEAD_LETTER_SUFFIX}",
            name=f"{topic_name}{DEAD_LETTER_SUFFIX}",
            labels=labels,
            opts=self.child(),
        )
        # A topic without a subscription drops what it receives; this one keeps dead letters
        # for an operator (and the dead-letter alert) for a week.
        self.dead_letter_hold_name = dead_letter_hold_name(topic_name)
        self.dead_letter_hold = gcp.pubsub.Subscription(
            self.dead_letter_hold_name,
            name=self.dead_letter_hold_name,
            topic=self.dead_letter.name,
            message_retention_duration="604800s",
            expiration_policy={"ttl": ""},
            labels=labels,
            opts=self.child(),
        )
        agent = gcp.projects.ServiceIdentity(
            "pubsub-service-agent", service="pubsub.googleapis.com", opts=self.child()
        )
        agent_member = member(agent)
        gcp.pubsub.TopicIAMMember(
            "pubsub-agent-dead-letter-publisher",
            topic=self.dead_letter.name,
            role="roles/pubsub.publisher",
            member=agent_member,
            opts=self.child(),
        )
        # Dead-lettering also needs the agent to read (ack) the source subscription; those are
        # created at run time by each gateway process, so they cannot be bound one by one, and
        # Pub/Sub has no IAM conditions on resource names. The agent is Google's own identity.
        gcp.projects.IAMMember(
            "pubsub-agent-subscriber",
            project=config.project,
            role="roles/pubsub.subscriber",
            member=agent_member,
            opts=self.child(),
        )
        gcp.pubsub.TopicIAMMember(
            "projector-publisher",
            topic=self.topic.name,
            role="roles/pubsub.publisher",
            member=member(accounts.workloads[PROJECTOR]),
            opts=self.child(),
        )
        live = gcp.projects.IAMCustomRole(
            "live-subscriber",
            role_id="agentlaneLiveSubscriber",
            title="agentlane live subscriber",
            description="Create, read and delete the process's own expiring subscription.",
            permissions=list(LIVE_SUBSCRIBER_PERMISSIONS),
            opts=self.child(),
        )
        for workload in (GATEWAY, COMMAND_SERVICE):
            gcp.projects.IAMMember(
                f"{workload.component}-live-subscriber",
                project=config.project,
                role=live.name,
                member=member(accounts.workloads[workload]),
                opts=self.child(),
            )
        self.register_outputs({"topic": self.topic.name})
