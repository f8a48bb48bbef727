"""Pub/Sub for consumers: a dead-letter-aware subscriber helper and the ``pubsub`` bus.

:class:`PubSubConsumer` streams a subscription, decodes each message's Event JSON, drops
redeliveries by ``eventId`` and hands every event once to an async handler: ack on success, nack on
failure (Pub/Sub redelivers; with a dead-letter policy it forwards the message after
``max_delivery_attempts``, and the helper logs the last attempt). A message that is not an Event is
a poison message: nacked towards the dead-letter topic when the subscription has one, else acked
and logged, so it cannot block its ordering key forever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as gexc
from google.cloud.pubsub_v1.subscriber.message import Message

from agentlane.bus.base import Deduper, Subscription
from agentlane.bus.clients import subscriber_client
from agentlane.bus.codec import decode
from agentlane.bus.errors import BusError, BusUnavailable
from agentlane.errors import InvalidEvent
from agentlane.records import StoredEvent

logger = logging.getLogger(__name__)

Handler = Callable[[StoredEvent], Awaitable[None]]


async def ensure_subscription(
    subscriber: pubsub_v1.SubscriberClient,
    *,
    subscription_path: str,
    topic_path: str,
    ack_deadline_s: int = 30,
    expires_after: timedelta | None = timedelta(days=1),
    dead_letter_topic_path: str | None = None,
    max_delivery_attempts: int = 5,
) -> None:
    """Create an ordered subscription unless it exists (``expires_after`` deletes an idle one)."""
    request: dict[str, Any] = {
        "name": subscription_path,
        "topic": topic_path,
        "enable_message_ordering": True,
        "ack_deadline_seconds": ack_deadline_s,
    }
    if expires_after is not None:
        request["expiration_policy"] = {"ttl": {"seconds": int(expires_after.total_seconds())}}
    if dead_letter_topic_path is not None:
        request["dead_letter_policy"] = {
            "dead_letter_topic": dead_letter_topic_path,
            "max_delivery_attempts": max_delivery_attempts,
        }
    try:
        await asyncio.to_thread(subscriber.create_subscription, request=request)
    except gexc.AlreadyExists:
        pass
    except (gexc.ServiceUnavailable, gexc.DeadlineExceeded) as exc:
        raise BusUnavailable(f"Pub/Sub unavailable: {exc}") from exc
    except gexc.GoogleAPICallError as exc:
        raise BusError(f"cannot create subscription {subscription_path}: {exc}") from exc


class PubSubConsumer:
    """Stream one subscription into an async handler, each event once (see the module docstring).

    Use as ``async with PubSubConsumer(...)``; it pulls until the context exits. ``stopped`` is set
    (and ``error`` holds why) if the stream ends on its own.
    """

    def __init__(
        self,
        subscriber: pubsub_v1.SubscriberClient,
        subscription_path: str,
        handler: Handler,
        *,
        max_outstanding: int = 1000,
        handler_timeout_s: float = 60.0,
        max_delivery_attempts: int | None = None,
        deduper: Deduper | None = None,
    ) -> None:
        self.subscriber = subscriber
        self.subscription_path = subscription_path
        self.handler = handler
        self.max_outstanding = max_outstanding
        self.handler_timeout_s = handler_timeout_s
        self.max_delivery_attempts = max_delivery_attempts
        self.deduper = deduper or Deduper()
        self.received = 0
        self.failed = 0
        self.poison = 0
        self.stopped = asyncio.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: Any = None

    @property
    def duplicates(self) -> int:
        return self.deduper.duplicates

    async def __aenter__(self) -> PubSubConsumer:
        self._loop = asyncio.get_running_loop()
        self._future = self.subscriber.subscribe(
            self.subscription_path,
            self._on_message,
            flow_control=pubsub_v1.types.FlowControl(max_messages=self.max_outstanding),
        )
        self._future.add_done_callback(self._on_done)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        future = self._future
        if future is not None:
            future.cancel()
            with contextlib.suppress(Exception):
                await asyncio.to_thread(future.result, 10)

    def _on_done(self, future: Any) -> None:
        if not future.cancelled():
            self.error = future.exception()
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.stopped.set)

    def _on_message(self, message: Message) -> None:
        """Runs on the client's callback threads; the handler runs on the event loop."""
        assert self._loop is not None
        try:
            event = decode(message.data)
        except InvalidEvent as exc:
            self._poison(message, exc)
            return
        work = asyncio.run_coroutine_threadsafe(self._handle(event), self._loop)
        try:
            work.result(timeout=self.handler_timeout_s)
        except (Exception, concurrent.futures.CancelledError) as exc:
            self.failed += 1
            attempt = message.delivery_attempt
            if self.max_delivery_attempts and attempt and attempt >= self.max_delivery_attempts:
                logger.error(
                    "event %s failed on its last delivery attempt (%s), so it is dead-lettered: %r",
                    event.event_id, attempt, exc,
                )
            else:
                logger.warning("event %s failed (attempt %s): %r", event.event_id, attempt, exc)
            message.nack()
            return
        message.ack()

    async def _handle(self, event: StoredEvent) -> None:
        self.received += 1
        if not self.deduper.first_time(event.event_id):
            return
        try:
            await self.handler(event)
        except BaseException:
            self.deduper.forget(event.event_id)
            raise

    def _poison(self, message: Message, exc: Exception) -> None:
        self.poison += 1
        if message.delivery_attempt is not None:
            logger.error("undecodable message %s (attempt %s): %s; nacked towards the "
                         "dead-letter topic", message.message_id, message.delivery_attempt, exc)
            message.nack()
        else:
            logger.error("undecodable message %s dropped (no dead-letter policy): %s",
                         message.message_id, exc)
            message.ack()


class PubSubBus:
    """Live delivery from the projector's topic (``AGENTLANE_BUS=pubsub``).

    Each subscription is a fresh ordered Pub/Sub subscription of this process (it expires if the
    process dies without deleting it), deleted when the context exits.
    """

    name = "pubsub"

    def __init__(
        self,
        *,
        project: str,
        topic: str,
        emulator_host: str | None = None,
        subscription_prefix: str = "agentlane-live-",
        queue_size: int = 10_000,
    ) -> None:
        self.project = project
        self.topic = topic
        self.emulator_host = emulator_host
        self.subscription_prefix = subscription_prefix
        self.queue_size = queue_size

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        subscriber = await asyncio.to_thread(subscriber_client, self.emulator_host)
        subscription_path = subscriber.subscription_path(
            self.project, f"{self.subscription_prefix}{uuid.uuid4().hex}"
        )
        topic_path = subscriber.topic_path(self.project, self.topic)
        try:
            await ensure_subscription(
                subscriber, subscription_path=subscription_path, topic_path=topic_path
            )
            subscription = Subscription(capacity=self.queue_size)
            consumer = PubSubConsumer(
                subscriber, subscription_path, subscription.put, deduper=subscription.deduper
            )
            async with consumer, asyncio.TaskGroup() as group:
                watcher = group.create_task(self._end_when_stopped(consumer, subscription))
                try:
                    yield subscription
                finally:
                    watcher.cancel()
        finally:
            with contextlib.suppress(gexc.GoogleAPICallError):
                await asyncio.to_thread(
                    subscriber.delete_subscription, request={"subscription": subscription_path},
                    timeout=10,
                )
            await asyncio.to_thread(subscriber.close)

    @staticmethod
    async def _end_when_stopped(consumer: PubSubConsumer, subscription: Subscription) -> None:
        """A stream that ends on its own (subscription deleted, permission lost) ends the reader's
        iteration with BusUnavailable instead of leaving it waiting forever."""
        await consumer.stopped.wait()
        await subscription.fail(BusUnavailable(f"Pub/Sub stream ended: {consumer.error!r}"))
