"""Reading a JSON request body safely: media type, a size limit counted while the bytes arrive
(never trusting Content-Length), JSON syntax, then the pydantic model, each with its own problem."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from agentlane.events import describe_validation_error
from agentlane.json_input import ClientJsonError, loads_client_json
from command_service.errors import (
    InvalidRequest,
    MalformedRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMedia,
)

#: Largest request body accepted (bytes).
MAX_BODY_BYTES = 256 * 1024
#: How long a whole body may take to arrive: a trickling upload holds an in-flight slot, so it is
#: cut (408) rather than allowed to hold it for as long as the client likes.
BODY_DEADLINE_S = 10.0

M = TypeVar("M", bound=BaseModel)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(
    request: Request, *, limit: int = MAX_BODY_BYTES, deadline_s: float | None = None
) -> bytes:
    """The raw body, refused with 413 as soon as more than ``limit`` bytes have arrived, and with
    408 when it has not all arrived within ``deadline_s`` (default :data:`BODY_DEADLINE_S`)."""
    deadline_s = BODY_DEADLINE_S if deadline_s is None else deadline_s
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {deadline_s:g}s") from None
    except ClientDisconnect:
        # Nobody is left to answer; a 400 keeps it out of the error log.
        raise MalformedRequest("the client disconnected while sending the body") from None
    return b"".join(chunks)


async def read_model(
    request: Request, model: type[M], *, optional: bool = False, limit: int = MAX_BODY_BYTES
) -> M:
    """Parse the body into ``model``. With ``optional``, an empty body means ``model()``."""
    raw = await read_body(request, limit=limit)
    if optional and not raw.strip():
        return model()
    if not _is_json(request.headers.get("content-type", "")):
        raise UnsupportedMedia("the request body must be application/json")
    try:
        document = loads_client_json(raw)
    except ClientJsonError as exc:
        if exc.not_text:
            raise InvalidRequest(str(exc)) from None
        raise MalformedRequest(f"the body is {exc}") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        detail = describe_validation_error(exc, prefix="body")
        raise InvalidRequest(detail if len(detail) <= 1000 else detail[:997] + "...") from None
