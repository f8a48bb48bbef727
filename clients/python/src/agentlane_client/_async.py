"""The asynchronous client: runs over the HTTP API, a session's events over its WebSocket."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

import httpx

from agentlane_client._errors import APIConnectionError, BlobMismatch, raise_for_problem
from agentlane_client._models import Event, Fork, Run, RunAccepted, SessionUsage
from agentlane_client._socket import SessionSocket
from agentlane_client.transcript import Change, Ended, Transcript

__all__ = ["AsyncClient"]

OnConflict = Literal["enqueue", "reject", "interrupt"]
#: Attempts of a request that did not reach the server (same runId, so a start stays one run).
_TRANSPORT_ATTEMPTS = 3


class AsyncClient:
    """``AsyncClient(base_url, token=…)``; ``runs`` and ``sessions`` hold the operations.

    Use ``async with`` (or call :meth:`aclose`) to release the HTTP connections.
    """

    def __init__(
        self, base_url: str = "http://127.0.0.1:8080", *, token: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self.runs = AsyncRuns(self)
        self.sessions = AsyncSessions(self)
        self.operations = AsyncOperations(self)
        self.blobs = AsyncBlobs(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._response(method, path, **kwargs)).json()

    async def _response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(1, _TRANSPORT_ATTEMPTS + 1):
            try:
                response = await self._http.request(method, path, **kwargs)
                break
            except httpx.TransportError as exc:
                if attempt == _TRANSPORT_ATTEMPTS:
                    raise APIConnectionError(f"{method} {path}: {exc}") from exc
        raise_for_problem(response)
        return response


class AsyncRuns:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def create(
        self, session_id: str, message: str, *, run_id: str | None = None,
        on_conflict: OnConflict = "enqueue", approval_timeout_s: float | None = None,
        model: str | None = None, tools: Sequence[str] | None = None,
        system_prompt: str | None = None,
    ) -> RunAccepted:
        """Start a run; the same ``run_id`` again is the same run (a safe retry).
        ``approval_timeout_s``: how long each approval of the run may wait before the tool's
        default applies (deny, unless the tool approves by default). ``model`` (one the server
        offers), ``tools`` (by name, a subset of the runners') and ``system_prompt``: the run's
        own, recorded with it."""
        body: dict[str, Any] = {
            "runId": run_id or f"run-{uuid.uuid4().hex}", "message": message,
            "onConflict": on_conflict,
        }
        if approval_timeout_s is not None:
            body["approvalTimeoutSeconds"] = approval_timeout_s
        options = {
            key: value for key, value in
            (("model", model), ("tools", None if tools is None else list(tools)),
             ("systemPrompt", system_prompt))
            if value is not None
        }
        if options:
            body["options"] = options
        answer = await self._client._request(
            "POST", f"/agents/{quote(session_id, safe='')}/runs", json=body
        )
        return RunAccepted.model_validate(answer)

    async def get(self, execution_id: str) -> Run:
        return Run.model_validate(
            await self._client._request("GET", f"/runs/{quote(execution_id, safe='')}")
        )

    async def cancel(self, execution_id: str, *, reason: str | None = None) -> int | None:
        """Ask the run to stop; the ``eventId`` of its CancelRequested (None: it had ended)."""
        body = {"reason": reason} if reason is not None else {}
        answer = await self._client._request(
            "POST", f"/runs/{quote(execution_id, safe='')}/cancel", json=body
        )
        event_id = answer.get("eventId")
        return None if event_id is None else int(event_id)

    async def signal(self, execution_id: str, name: str, payload: Any = None) -> int:
        """Deliver the signal ``name``; the ``eventId`` of its SignalReceived."""
        answer = await self._client._request(
            "POST", f"/runs/{quote(execution_id, safe='')}/signals/{quote(name, safe='')}",
            json={"payload": payload},
        )
        return int(answer["eventId"])

    async def approve(self, execution_id: str, call_id: str, *, approved: bool = True) -> int:
        """Answer the approval a tool call waits for (``Suspended`` with reason ``approval``)."""
        return await self.signal(execution_id, f"approve:{call_id}", {"approved": approved})

    async def stream(
        self, session_id: str, message: str, *, run_id: str | None = None,
        on_conflict: OnConflict = "enqueue",
    ) -> AsyncIterator[Change]:
        """Start a run and yield what a reader shows of it, folded (``TextDelta``, ``Reset``
        when a crashed attempt's text must go, ``ToolCalled``/``ToolReturned``, ``Waiting``),
        ending with its ``Ended``."""
        accepted = await self.create(session_id, message, run_id=run_id, on_conflict=on_conflict)
        async for change in self.follow(accepted):
            yield change

    async def follow(self, run: RunAccepted) -> AsyncIterator[Change]:
        """What a reader shows of a run already started, from its beginning to its end."""
        transcript = Transcript()
        async with self._client.sessions.connect(run.session_id, after=run.event_id - 1) as socket:
            async for event in socket.events():
                if event.execution_id != run.execution_id:
                    continue
                for change in transcript.apply(event.wire()):
                    yield change
                    if isinstance(change, Ended):
                        return


class AsyncSessions:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def connect(self, session_id: str, *, after: int = 0) -> SessionSocket:
        """The session's socket: ``events()`` and the socket's commands (``async with`` it)."""
        return SessionSocket(
            self._client.base_url, session_id, token=self._client.token, after=after
        )

    async def events(self, session_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        """Every event of the session after ``after``, once each, in order, history then live,
        for as long as the caller iterates; reconnects and resumes by ``lastEventId``."""
        async with self.connect(session_id, after=after) as socket:
            async for event in socket.events():
                yield event

    async def page(
        self, session_id: str, *, after: int = 0, limit: int = 100
    ) -> tuple[list[Event], int | None]:
        """One page of the session's events and the ``after`` of the next (None at the end)."""
        answer = await self._client._request(
            "GET", f"/sessions/{quote(session_id, safe='')}/events",
            params={"after": after, "limit": limit},
        )
        return [Event.model_validate(e) for e in answer["events"]], answer["next"]

    async def fork(self, session_id: str, at_event_id: int, new_session_id: str) -> Fork:
        """Start ``new_session_id`` as a fork of ``session_id`` at its event ``at_event_id``: a
        run started there continues from this session's state at that event (its history);
        this session is not touched. The same fork again answers the same."""
        return Fork.model_validate(await self._client._request(
            "POST", f"/sessions/{quote(session_id, safe='')}/fork",
            json={"atEventId": at_event_id, "newSessionId": new_session_id},
        ))

    async def usage(self, session_id: str) -> SessionUsage:
        """The session's runs with their tokens and cost totalled (the server's read models)."""
        return SessionUsage.model_validate(
            await self._client._request("GET", f"/sessions/{quote(session_id, safe='')}/usage")
        )


class AsyncBlobs:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, ref: Mapping[str, Any] | str | Any) -> Any:
        """The value an event keeps in the blob store: pass its ``…Ref`` (``resultRef``,
        ``answerRef``, …) or the bare sha256. The bytes are checked against the hash before they
        are decoded (:class:`BlobMismatch` otherwise), so the event's place in the hash chain
        vouches for them."""
        if isinstance(ref, str):
            sha256 = ref
        else:
            sha256 = str(ref["sha256"] if isinstance(ref, Mapping) else ref.sha256)
        response = await self._client._response("GET", f"/blobs/{quote(sha256, safe='')}")
        digest = hashlib.sha256(response.content).hexdigest()
        if digest != sha256:
            raise BlobMismatch(f"blob {sha256}: the bytes received hash to {digest}")
        return json.loads(response.content)


class AsyncOperations:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def overview(self, *, days: int = 14) -> dict[str, Any]:
        """The cluster as of one database snapshot (``GET /ops/overview``): runners and their
        shards, due work per shard, projector lag and the horizon's age, runs by status, and every
        tenant's usage per model and day for the last ``days`` days. Operators only: a tenant's
        token gets :class:`Forbidden`."""
        answer: dict[str, Any] = await self._client._request(
            "GET", "/ops/overview", params={"days": days}
        )
        return answer
