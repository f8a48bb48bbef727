"""Model calls: one streamed chat completion per attempt, on the real ``openai`` SDK.

The SDK's own retries are off: every attempt is a step attempt of the engine, so the journal shows
each one (``StepFailed``) and the engine's policy decides, honouring ``Retry-After``. The step key
goes out as ``Idempotency-Key`` and as ``user`` so a server can dedupe a re-run step.
"""

from __future__ import annotations

import email.utils
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import openai

from agentlane.events import is_text
from agentlane.files import WatchedFile
from agentlane.pricing import EMPTY, PriceTable
from runners.agent.tokens import TokenBatcher
from runners.engine import NonRetryable, RetryLater, StepInfo

logger = logging.getLogger(__name__)


class ModelClient(Protocol):
    """``complete`` streams Token events through ``step`` and returns the journaled result:
    ``{"model", "content", "toolCalls": [{"id", "name", "arguments"}], "usage": {...},
    "offline"}``; it raises RetryLater/NonRetryable (or anything: retryable) on failure.
    ``model``: the run's own choice (``RunOptions.model``) instead of the configured model."""

    name: str

    async def complete(
        self,
        step: StepInfo,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None = None,
    ) -> dict[str, Any]: ...


class StreamCut(RetryLater):
    """The stream ended before the model said it was finished."""


@dataclass(frozen=True, slots=True)
class OpenAIOptions:
    base_url: str | None
    api_key: str
    model: str
    fallback_model: str | None = None
    # Bounds each wait on the server (connect, a read between two chunks): a hang becomes a
    # retryable timeout.
    timeout: timedelta = timedelta(seconds=60)
    #: When set, the key is read from this file (a mounted secret) instead of ``api_key``.
    api_key_file: Path | None = None


class KeyFile:
    """The model key mounted as a file (:class:`agentlane.files.WatchedFile`): a rotated key
    reaches the next model call without a restart; an unreadable file is retried, never a
    failed run."""

    __slots__ = ("_file",)

    def __init__(self, path: Path) -> None:
        self._file = WatchedFile(path)

    def read(self) -> str:
        try:
            return self._file.read()
        except OSError as exc:
            # Mid-update or not mounted yet: a later attempt reads it again.
            raise RetryLater(
                f"cannot read the model key from {self._file.path}: {exc}"
            ) from None


def attach_usage(
    step: StepInfo, prices: PriceTable, model: str, usage: dict[str, Any]
) -> dict[str, Any]:
    """Price a model call's usage and attach it to the step as its ``Usage`` event (written with
    the step's completion); the priced usage, which the call's result carries too."""
    priced = prices.price({"model": model, **usage})
    step.attach("Usage", {"step": step.step, **priced})
    return priced


class OpenAIModel:
    """Any OpenAI-compatible chat completions endpoint.

    A client per attempt: an attempt owns its connection, so a cancelled or cut stream can never
    leave a half-read connection in a shared pool, and nothing outlives the advance that used it.
    A model call takes seconds; a connection setup is a rounding error beside it.
    """

    def __init__(
        self, options: OpenAIOptions, *, max_attempts: int, prices: PriceTable = EMPTY
    ) -> None:
        self.options = options
        self.prices = prices
        self.name = options.model
        self._max_attempts = max_attempts
        self._timeout = options.timeout.total_seconds()
        self._key_file = KeyFile(options.api_key_file) if options.api_key_file else None

    def model_for(self, failures: int, chosen: str | None = None) -> str:
        """The run's chosen model, else the configured one; the fallback model (when set) takes
        the last try the retry budget allows, counted in recorded failures (a crashed runner's
        try is not one)."""
        if self.options.fallback_model and failures + 1 >= self._max_attempts > 1:
            return self.options.fallback_model
        return chosen or self.options.model

    async def complete(
        self,
        step: StepInfo,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None = None,
    ) -> dict[str, Any]:
        model = self.model_for(step.failures, model)
        batcher = TokenBatcher(step)
        try:
            return await self._stream(step, model, messages, tools, batcher)
        except openai.RateLimitError as exc:
            raise RetryLater(f"429 from {model}", after=_retry_after(exc.response)) from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status >= 500 or status in (408, 409):
                raise RetryLater(
                    f"{status} from {model}", after=_retry_after(exc.response)
                ) from exc
            # The provider's own text may echo the API key or the organisation: it stays out of
            # the journal (which the tenant reads) and out of the logs; its kind goes to both.
            logger.warning(
                "model call refused: %d from %s (type %s, code %s, request %s)",
                status, model, exc.type, exc.code, exc.request_id,
            )
            reason = _REFUSALS.get(status, "the model provider refused the request")
            raise NonRetryable(f"{status} from {model}: {reason}") from None
        except openai.APITimeoutError as exc:
            raise RetryLater(f"timeout calling {model}") from exc
        except openai.APIConnectionError as exc:
            # The SDK reports a connection dropped mid-stream (a cut answer) this way too.
            raise StreamCut(f"connection to {model} failed: {exc}") from exc
        finally:
            # Whatever streamed before a failure is written (tagged with its attempt), so a client
            # sees exactly what the journal says it saw.
            batcher.close()

    async def _stream(
        self,
        step: StepInfo,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        batcher: TokenBatcher,
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {"tools": tools} if tools else {}
        key = self._key_file.read() if self._key_file is not None else self.options.api_key
        async with openai.AsyncOpenAI(
            base_url=self.options.base_url,
            api_key=key,
            max_retries=0,
            timeout=self._timeout,
        ) as client:
            return await self._read(client, step, model, messages, extra, batcher)

    async def _read(
        self,
        client: openai.AsyncOpenAI,
        step: StepInfo,
        model: str,
        messages: list[dict[str, Any]],
        extra: dict[str, Any],
        batcher: TokenBatcher,
    ) -> dict[str, Any]:
        stream = await client.chat.completions.create(  # type: ignore[call-overload]
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
            user=step.key,
            extra_headers={"Idempotency-Key": step.key},
            **extra,
        )
        content: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage: dict[str, int] = {}
        finished = False
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    details = chunk.usage.prompt_tokens_details
                    usage = {
                        "inputTokens": chunk.usage.prompt_tokens,
                        "outputTokens": chunk.usage.completion_tokens,
                        "cachedInputTokens": (details.cached_tokens or 0) if details else 0,
                    }
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        # A provider's lone surrogate would be an event no database can store.
                        piece = _as_text(delta.content)
                        content.append(piece)
                        batcher.add(piece)
                    for call in delta.tool_calls or ():
                        entry = calls.setdefault(
                            call.index, {"id": "", "name": "", "arguments": ""}
                        )
                        if call.id:
                            entry["id"] = call.id
                        if call.function is not None:
                            entry["name"] += call.function.name or ""
                            entry["arguments"] += call.function.arguments or ""
                    if choice.finish_reason is not None:
                        finished = True
        if not finished:
            raise StreamCut(f"the stream from {model} ended before a finish_reason")
        batcher.close()
        text = "".join(content)
        if not usage:
            usage = {"inputTokens": _estimate(messages), "outputTokens": len(content),
                     "cachedInputTokens": 0}
        usage = attach_usage(step, self.prices, model, usage)
        return {
            "model": model,
            "content": text,
            "toolCalls": [calls[index] for index in sorted(calls)],
            "usage": usage,
            "offline": False,
        }


#: What a refusal means, said without the provider's words.
_REFUSALS = {
    400: "the model provider rejected the request",
    401: "the model provider did not accept the API key",
    403: "the model provider refused access",
    404: "the model provider does not know this model",
    413: "the request was too large for the model provider",
    422: "the model provider rejected the request",
}


def _as_text(piece: str) -> str:
    return piece if is_text(piece) else piece.encode("utf-8", "replace").decode("utf-8")


def _retry_after(response: Any) -> timedelta | None:
    """``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms``, if the server sent one."""
    if response is None:
        return None
    millis = response.headers.get("retry-after-ms")
    if millis is not None:
        try:
            return timedelta(milliseconds=float(millis))
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(timedelta(0), moment - datetime.now(UTC))


def _estimate(messages: list[dict[str, Any]]) -> int:
    return sum(len(json.dumps(message).split()) for message in messages)
