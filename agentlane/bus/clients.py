"""Pub/Sub clients pointed at the emulator (an explicit insecure channel) or at Google."""

from __future__ import annotations

from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
import grpc
from google.cloud.pubsub_v1.types import SubscriberOptions
from google.pubsub_v1 import PublisherAsyncClient
from google.pubsub_v1.services.publisher.transports import (
    PublisherGrpcAsyncIOTransport,
    PublisherGrpcTransport,
)
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from agentlane import telemetry
from agentlane.errors import ConfigError
from agentlane.settings import Settings

#: The project the emulator is used with when GOOGLE_CLOUD_PROJECT is unset.
EMULATOR_PROJECT = "agentlane-dev"


def pubsub_project(settings: Settings) -> str:
    """The project of the fan-out topic; the emulator needs none configured."""
    project = settings.google_cloud_project or (
        EMULATOR_PROJECT if settings.pubsub_emulator_host else None
    )
    if project is None:
        raise ConfigError("AGENTLANE_BUS=pubsub needs GOOGLE_CLOUD_PROJECT")
    return project


def publisher_client(emulator_host: str | None, **options: Any) -> pubsub_v1.PublisherClient:
    """A PublisherClient; ``options`` are its ``batch_settings``/``publisher_options``."""
    if emulator_host:
        transport = PublisherGrpcTransport(channel=grpc.insecure_channel(emulator_host))
        return pubsub_v1.PublisherClient(transport=transport, **options)
    return pubsub_v1.PublisherClient(**options)


def async_publisher_client(emulator_host: str | None) -> PublisherAsyncClient:
    """The GAPIC asyncio publisher (no batching threads: the caller sends whole requests). Made
    inside the running loop, which its channel belongs to."""
    if emulator_host:
        channel = grpc.aio.insecure_channel(emulator_host)
        return PublisherAsyncClient(transport=PublisherGrpcAsyncIOTransport(channel=channel))
    return PublisherAsyncClient()


def subscriber_client(emulator_host: str | None) -> pubsub_v1.SubscriberClient:
    # The client's own spans (subscribe, ack) when this process traces (agentlane.telemetry).
    options = SubscriberOptions(enable_open_telemetry_tracing=telemetry.enabled())
    if emulator_host:
        transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(emulator_host))
        return pubsub_v1.SubscriberClient(transport=transport, subscriber_options=options)
    return pubsub_v1.SubscriberClient(subscriber_options=options)
