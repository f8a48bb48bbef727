"""Ordered publishing of events to the fan-out topic on asyncio: one request in flight per
ordering key, many keys at once.

Messages carry the Event JSON, ordering key ``tenantId/sessionId`` and the attributes of
docs/contract.md. Pub/Sub orders the messages of one key by the order its publish requests arrive,
and one ``PublishRequest`` holds one key's messages only. So :meth:`EventPublisher.publish` splits
a batch by key (order kept) into requests of at most ``max_messages``/``max_bytes``, sends each
key's requests one after another, and runs up to ``max_concurrent`` requests of different keys at
once on the async gRPC client. The library's ``PublisherClient`` instead hands every key's batch
to a commit thread of its own, and the GIL contention of hundreds of them made it publish at 0.43
of an unordered publisher (BENCHMARKS.md).

``publish`` returns only when every request of the batch has succeeded. A request that still fails
after its retries stops its key (a later request of that key would overtake it) and the batch
ends in PublishFailed naming the failed keys, once the other keys' requests are done; the caller
rewinds to its checkpoint and publishes again (at least once; subscribers drop repeats by
eventId). No key is ever paused, so there is nothing to resume. A batch not done within
``stuck_after_s`` is cancelled, its client replaced, and fails the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence

from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.pubsub_v1 import PublisherAsyncClient, PublishRequest, PubsubMessage

from agentlane import telemetry
from agentlane.bus.clients import async_publisher_client
from agentlane.bus.codec import attributes, encode, ordering_key
from agentlane.records import StoredEvent
from projector.errors import PublishFailed

logger = logging.getLogger(__name__)

#: Pub/Sub's limits per PublishRequest are 1,000 messages and 10 MB; keep a margin for framing.
MAX_MESSAGES = 1000
MAX_BYTES = 9 * 1024 * 1024
#: The attribute Pub/Sub's subscriber client reads a message's W3C trace context from.
TRACE_ATTRIBUTE = "googclient_traceparent"

_RETRYABLE = (
    gexc.Aborted, gexc.Cancelled, gexc.DeadlineExceeded, gexc.InternalServerError,
    gexc.ResourceExhausted, gexc.ServiceUnavailable, gexc.Unknown,
)


class EventPublisher:
    """Publishes to ``projects/{project}/topics/{topic}``; use ``async with``."""

    def __init__(
        self,
        *,
        project: str,
        topic: str,
        emulator_host: str | None = None,
        create_topic: bool = False,
        max_messages: int = MAX_MESSAGES,
        max_bytes: int = MAX_BYTES,
        max_concurrent: int = 64,
        rpc_timeout_s: float = 10.0,
        retry_deadline_s: float = 20.0,
        stuck_after_s: float = 60.0,
    ) -> None:
        if not 1 <= max_messages <= MAX_MESSAGES or max_bytes < 1 or max_concurrent < 1:
            raise ValueError("publisher limits out of range")
        self.project = project
        self.topic = topic
        self.emulator_host = emulator_host
        self.create_topic = create_topic
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_concurrent = max_concurrent
        self.rpc_timeout_s = rpc_timeout_s
        self.stuck_after_s = stuck_after_s
        self._retry = retries.AsyncRetry(
            initial=0.1, maximum=2.0, multiplier=2.0, timeout=retry_deadline_s,
            predicate=retries.if_exception_type(*_RETRYABLE),
        )
        self._client: PublisherAsyncClient | None = None
        self.topic_path = f"projects/{project}/topics/{topic}"

    async def __aenter__(self) -> EventPublisher:
        await self._ready_client()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.transport.close(), timeout=5)  # type: ignore[no-untyped-call]

    async def _ready_client(self) -> PublisherAsyncClient:
        """The client, made anew after a stalled one was discarded."""
        if self._client is None:
            self._client = async_publisher_client(self.emulator_host)
        return self._client

    async def ensure_topic(self) -> None:
        """Create the topic if missing (dev and tests only: in production the infra owns it)."""
        client = await self._ready_client()
        try:
            await client.create_topic(name=self.topic_path, timeout=10)
            logger.info("created Pub/Sub topic %s", self.topic_path)
        except gexc.AlreadyExists:
            pass
        except gexc.GoogleAPICallError as exc:
            raise PublishFailed(f"cannot create topic {self.topic_path}: {exc}") from exc

    async def publish(self, events: Sequence[StoredEvent]) -> None:
        """Publish ``events``, in the given order per ordering key; return when all are stored."""
        if not events:
            return
        client = await self._ready_client()
        by_key = self._messages_by_key(events)
        slots = asyncio.Semaphore(self.max_concurrent)
        errors: dict[str, BaseException] = {}

        async def send(key: str, messages: list[PubsubMessage]) -> None:
            for request in self._requests(messages):
                async with slots:
                    try:
                        await client.publish(
                            request=request, retry=self._retry, timeout=self.rpc_timeout_s
                        )
                    except Exception as exc:  # any failure of a request rewinds the batch
                        errors[key] = exc
                        return  # the rest of this key would overtake the failed request

        try:
            async with asyncio.timeout(self.stuck_after_s):
                await asyncio.gather(*(send(key, messages) for key, messages in by_key.items()))
        except TimeoutError:
            logger.error("publishes unresolved after %ss; replacing the Pub/Sub client",
                         self.stuck_after_s)
            await self._close()
            raise PublishFailed("publishes stalled; client replaced") from None
        if errors:
            if self.create_topic and any(isinstance(e, gexc.NotFound) for e in errors.values()):
                with contextlib.suppress(PublishFailed):
                    await self.ensure_topic()
            first = next(iter(errors.values()))
            raise PublishFailed(
                f"{len(errors)} ordering key(s) failed to publish: {first!r}",
                ordering_keys=frozenset(errors),
            ) from (first if isinstance(first, Exception) else None)

    def _messages_by_key(self, events: Sequence[StoredEvent]) -> dict[str, list[PubsubMessage]]:
        traced = telemetry.enabled()
        by_key: dict[str, list[PubsubMessage]] = {}
        for event in events:
            key = ordering_key(event)
            labels = attributes(event)
            if traced and event.trace is not None:
                # The subscriber's spans of this message join the event's trace.
                labels[TRACE_ATTRIBUTE] = event.trace
            by_key.setdefault(key, []).append(
                PubsubMessage(data=encode(event), attributes=labels, ordering_key=key)
            )
        return by_key

    def _requests(self, messages: list[PubsubMessage]) -> Iterator[PublishRequest]:
        """``messages`` of one key in order, cut into requests within Pub/Sub's limits."""
        chunk: list[PubsubMessage] = []
        size = 0
        for message in messages:
            length = PubsubMessage.pb(message).ByteSize()
            if chunk and (len(chunk) >= self.max_messages or size + length > self.max_bytes):
                yield PublishRequest(topic=self.topic_path, messages=chunk)
                chunk, size = [], 0
            chunk.append(message)
            size += length
        if chunk:
            yield PublishRequest(topic=self.topic_path, messages=chunk)
