"""Ordered, flow-controlled publishing of events to the fan-out topic, with nothing left stuck.

Messages carry the Event JSON, ordering key ``tenantId/sessionId`` and the attributes of
docs/contract.md.
:meth:`EventPublisher.publish` returns only when every future of the batch has resolved; a failed
key is resumed (``resume_publish``) before PublishFailed reaches the caller, who rewinds to its
checkpoint. A batch whose futures do not all resolve within ``stuck_after_s`` (the known silent
stall of ordered publishing after deadline errors) replaces the client, so no key stays paused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.cloud.pubsub_v1.types import (
    BatchSettings,
    LimitExceededBehavior,
    PublisherOptions,
    PublishFlowControl,
)

from agentlane import telemetry
from agentlane.bus.clients import publisher_client
from agentlane.bus.codec import attributes, encode, ordering_key
from agentlane.records import StoredEvent
from projector.errors import PublishFailed

logger = logging.getLogger(__name__)


class EventPublisher:
    """One PublisherClient for ``projects/{project}/topics/{topic}``; use ``async with``."""

    def __init__(
        self,
        *,
        project: str,
        topic: str,
        emulator_host: str | None = None,
        create_topic: bool = False,
        max_messages: int = 500,
        max_latency_s: float = 0.01,
        flow_messages: int = 5000,
        flow_bytes: int = 32 * 1024 * 1024,
        rpc_timeout_s: float = 10.0,
        retry_deadline_s: float = 20.0,
        stuck_after_s: float = 60.0,
    ) -> None:
        self.project = project
        self.topic = topic
        self.emulator_host = emulator_host
        self.create_topic = create_topic
        self.stuck_after_s = stuck_after_s
        self._batch = BatchSettings(
            max_bytes=1_000_000, max_latency=max_latency_s, max_messages=max_messages
        )
        self._options = PublisherOptions(
            enable_message_ordering=True,
            enable_open_telemetry_tracing=telemetry.enabled(),
            flow_control=PublishFlowControl(
                message_limit=flow_messages,
                byte_limit=flow_bytes,
                limit_exceeded_behavior=LimitExceededBehavior.BLOCK,
            ),
            retry=retries.Retry(
                initial=0.1, maximum=2.0, multiplier=2.0, timeout=retry_deadline_s,
                predicate=retries.if_exception_type(
                    gexc.Aborted, gexc.Cancelled, gexc.DeadlineExceeded, gexc.InternalServerError,
                    gexc.ResourceExhausted, gexc.ServiceUnavailable, gexc.Unknown,
                ),
            ),
            timeout=rpc_timeout_s,
        )
        self._client: pubsub_v1.PublisherClient | None = None
        self.topic_path = f"projects/{project}/topics/{topic}"

    async def __aenter__(self) -> EventPublisher:
        self._client = await asyncio.to_thread(self._new_client)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    def _new_client(self) -> pubsub_v1.PublisherClient:
        return publisher_client(
            self.emulator_host, batch_settings=self._batch, publisher_options=self._options
        )

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # stop() flushes; a wedged client would block it, so it gets a bounded wait.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.to_thread(client.stop), timeout=5)

    async def _ready_client(self) -> pubsub_v1.PublisherClient:
        """The client, made anew after a stalled one was discarded."""
        if self._client is None:
            self._client = await asyncio.to_thread(self._new_client)
        return self._client

    async def ensure_topic(self) -> None:
        """Create the topic if missing (dev and tests only: in production the infra owns it)."""
        client = await self._ready_client()
        try:
            await asyncio.to_thread(client.create_topic, name=self.topic_path, timeout=10)
            logger.info("created Pub/Sub topic %s", self.topic_path)
        except gexc.AlreadyExists:
            pass
        except gexc.GoogleAPICallError as exc:
            raise PublishFailed(f"cannot create topic {self.topic_path}: {exc}") from exc

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        """Publish in the given order (per ordering key) and wait for every future."""
        if not events:
            return
        client = await self._ready_client()
        pending, failed = await asyncio.to_thread(self._publish_all, client, events)
        try:
            async with asyncio.timeout(self.stuck_after_s):
                results = await asyncio.gather(
                    *(asyncio.wrap_future(future) for _, future in pending),
                    return_exceptions=True,
                )
        except TimeoutError:
            logger.error("publishes unresolved after %ss; replacing the Pub/Sub client",
                         self.stuck_after_s)
            await self._close()
            raise PublishFailed("publish futures stalled; client replaced") from None
        errors: dict[str, BaseException] = dict(failed)
        for (key, _), result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                errors.setdefault(key, result)
        if errors:
            for key in errors:
                # A failed ordered publish pauses its key: every later publish on it fails until
                # this is called.
                client.resume_publish(self.topic_path, key)
            if self.create_topic and any(isinstance(e, gexc.NotFound) for e in errors.values()):
                with contextlib.suppress(PublishFailed):
                    await self.ensure_topic()
            first = next(iter(errors.values()))
            raise PublishFailed(
                f"{len(errors)} ordering key(s) failed to publish: {first!r}",
                ordering_keys=frozenset(errors),
            ) from (first if isinstance(first, Exception) else None)

    def _publish_all(
        self, client: pubsub_v1.PublisherClient, events: Sequence[StoredEvent]
    ) -> tuple[list[tuple[str, concurrent.futures.Future[Any]]], dict[str, BaseException]]:
        """On a worker thread: flow control BLOCKs here while too much is in flight."""
        pending: list[tuple[str, concurrent.futures.Future[Any]]] = []
        failed: dict[str, BaseException] = {}
        for event in events:
            key = ordering_key(event)
            if key in failed:
                continue  # publishing more of this key would break its order
            try:
                # The client's own span of this message joins the event's trace.
                with telemetry.within(event.trace):
                    future = client.publish(
                        self.topic_path, encode(event), ordering_key=key, **attributes(event)
                    )
            except Exception as exc:
                failed[key] = exc
                continue
            pending.append((key, future))
        return pending, failed
