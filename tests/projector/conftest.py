"""Fixtures of the projector tests: in-process projectors and the two buses.

``live`` is parametrized over both buses, so every delivery test is one contract suite run against
``postgres`` and ``pubsub`` (the latter on Google's emulator, in a project of its own per test).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from google.api_core import exceptions as gexc

from agentlane.bus import EventBus, PostgresBus, PubSubBus
from agentlane.bus.clients import publisher_client
from agentlane.cli.pubsub_emulator import PubSubEmulator
from agentlane.db import Database
from agentlane.store import EventStore, Tail
from projector import EventPublisher, Projector, ProjectorOptions

TOPIC = "agent-events"


@dataclass
class PubSubTarget:
    """One test's own project on the shared emulator, with the fan-out topic created."""

    emulator: PubSubEmulator
    project: str
    topic: str = TOPIC

    @property
    def host(self) -> str:
        return self.emulator.host_port

    def env(self) -> dict[str, str]:
        return {
            "AGENTLANE_BUS": "pubsub",
            "PUBSUB_EMULATOR_HOST": self.host,
            "GOOGLE_CLOUD_PROJECT": self.project,
            "AGENTLANE_TOPIC": self.topic,
        }

    def publisher(self, **options: float) -> EventPublisher:
        return EventPublisher(
            project=self.project, topic=self.topic, emulator_host=self.host, create_topic=True,
            **options,  # type: ignore[arg-type]
        )

    def bus(self) -> PubSubBus:
        return PubSubBus(project=self.project, topic=self.topic, emulator_host=self.host)


@pytest.fixture
def pubsub_target(pubsub_emulator: PubSubEmulator) -> PubSubTarget:
    """A fresh project with the topic already there (as the infrastructure would have it)."""
    target = PubSubTarget(pubsub_emulator, f"proj-{uuid.uuid4().hex[:12]}")
    client = publisher_client(target.host)
    with contextlib.suppress(gexc.AlreadyExists):
        client.create_topic(name=f"projects/{target.project}/topics/{target.topic}", timeout=30)
    client.stop()
    return target


@dataclass
class Live:
    """A bus to subscribe to, and how a projector must be configured to feed it."""

    name: str
    bus: EventBus
    env: dict[str, str] = field(default_factory=dict)
    pubsub: PubSubTarget | None = None

    def publisher(self) -> EventPublisher | None:
        return self.pubsub.publisher() if self.pubsub is not None else None


@pytest.fixture(params=["postgres", pytest.param("pubsub", marks=pytest.mark.pubsub)])
def live(request: pytest.FixtureRequest, store: EventStore, db: Database) -> Live:
    if request.param == "postgres":
        return Live("postgres", PostgresBus(store, Tail(db)), {"AGENTLANE_BUS": "postgres"})
    target: PubSubTarget = request.getfixturevalue("pubsub_target")
    return Live("pubsub", target.bus(), target.env(), target)


@contextlib.asynccontextmanager
async def running_projector(
    db: Database,
    *,
    publisher: EventPublisher | None = None,
    holder: str = "test",
    **options: float,
) -> AsyncIterator[Projector]:
    """An in-process projector, leading until the context exits."""
    projector = Projector(
        db=db, holder=holder, publisher=publisher,
        options=ProjectorOptions(**options),  # type: ignore[arg-type]
    )
    async with projector:
        for _ in range(100):
            if projector.lease is not None:
                break
            await asyncio.sleep(0.05)
        yield projector
