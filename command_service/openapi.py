"""The OpenAPI 3.1 document of the command API, assembled from the pydantic models' JSON Schemas
(:data:`command_service.models.SCHEMA_MODELS`), listing every problem+json answer a route gives."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from agentlane.commands import IDENTIFIER_PATTERN
from command_service.bodies import BODY_DEADLINE_S, MAX_BODY_BYTES
from command_service.models import SCHEMA_MODELS
from command_service.ops import MAX_DAYS

_REF = "#/components/schemas/{model}"

_PROBLEM_TITLES = {
    400: "Malformed JSON",
    401: "Missing or invalid bearer token",
    403: "The token is not an operator's (AGENTLANE_OPERATOR_CLAIM)",
    404: "No such route, run or session for this tenant",
    408: f"The body did not arrive within {BODY_DEADLINE_S:g} seconds",
    409: "The run conflicts with the session's state or has ended",
    413: f"Body larger than {MAX_BODY_BYTES} bytes",
    415: "Body is not application/json",
    422: "Invalid input; the detail names the field",
    429: "Over a tenant quota or the server is at capacity; retry after Retry-After seconds",
    503: "The database (or the token keys) cannot be reached; retry after Retry-After seconds",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _problems(*statuses: int, jwt: bool) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status in sorted({*statuses, 404, 429, 503} | ({401} if jwt else set())):
        answer: dict[str, Any] = {
            "description": _PROBLEM_TITLES[status],
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
        if status in (429, 503):
            answer["headers"] = _RETRY_AFTER
        answers[str(status)] = answer
    return answers


def _path_param(name: str, description: str, *, pattern: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if pattern:
        schema.update(pattern=IDENTIFIER_PATTERN, maxLength=128)
    return {
        "name": name, "in": "path", "required": True, "description": description, "schema": schema
    }


def _query_param(name: str, description: str, minimum: int, maximum: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum},
    }


def _body(name: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json(name)}


def _day_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name, "in": "query", "required": False, "description": description,
        "schema": {"type": "string", "format": "date"},
    }


def build_openapi(*, jwt: bool) -> dict[str, Any]:
    """The document ``GET /openapi.json`` serves (``jwt``: bearer auth is required)."""
    _, top = models_json_schema(
        [(model, "validation") for model in SCHEMA_MODELS], ref_template=_REF
    )
    execution = _path_param("executionId", "The executionId POST returned.", pattern=False)
    session = _path_param("sessionId", "Client-owned session id.")
    paths: dict[str, Any] = {
        "/agents/{sessionId}/runs": {
            "post": {
                "operationId": "startRun",
                "summary": "Start a run in a session (idempotent by runId)",
                "parameters": [session],
                "requestBody": _body("StartRunRequest"),
                "responses": {
                    "202": {
                        "description": "Accepted (also for a retry of the same runId: same body, "
                        "header Idempotent-Replayed: true)",
                        "content": _json("RunAcceptedResponse"),
                    },
                    **_problems(400, 408, 409, 413, 415, 422, jwt=jwt),
                },
            }
        },
        "/runs/{executionId}": {
            "get": {
                "operationId": "getRun",
                "summary": "A run's status, answer, error and usage",
                "parameters": [execution],
                "responses": {
                    "200": {"description": "The run", "content": _json("RunResponse")},
                    **_problems(jwt=jwt),
                },
            }
        },
        "/runs/{executionId}/cancel": {
            "post": {
                "operationId": "cancelRun",
                "summary": "Ask a run to stop (a no-op for a run that has ended)",
                "parameters": [execution],
                "requestBody": _body("CancelRequest", required=False),
                "responses": {
                    "202": {"description": "Cancel requested", "content": _json("CancelAccepted")},
                    **_problems(400, 408, 413, 415, 422, jwt=jwt),
                },
            }
        },
        "/runs/{executionId}/signals/{name}": {
            "post": {
                "operationId": "signalRun",
                "summary": "Deliver a named signal (an approval) to a run that has not ended",
                "parameters": [execution, _path_param("name", "Signal name.")],
                "requestBody": _body("SignalRequest"),
                "responses": {
                    "202": {"description": "Signal recorded", "content": _json("SignalAccepted")},
                    **_problems(400, 408, 409, 413, 415, 422, jwt=jwt),
                },
            }
        },
        "/sessions/{sessionId}/events": {
            "get": {
                "operationId": "sessionEvents",
                "summary": "A session's events: JSON pages, or server-sent events",
                "description": "With `Accept: text/event-stream` the events after `after` (or "
                "the `Last-Event-ID` header) are sent as SSE (`id:` = eventId), then live "
                "events as they are appended, until the client disconnects.",
                "parameters": [
                    session,
                    _query_param("after", "Only events with a larger eventId.", 0, 2**63 - 1),
                    _query_param("limit", "Page size.", 1, 1000),
                ],
                "responses": {
                    "200": {
                        "description": "A page of events (or the SSE stream)",
                        "content": {
                            **_json("EventsPage"),
                            "text/event-stream": {"schema": {"type": "string"}},
                        },
                    },
                    **_problems(422, jwt=jwt),
                },
            }
        },
        "/sessions/{sessionId}/fork": {
            "post": {
                "operationId": "forkSession",
                "summary": "Start a new session whose history is this one's up to an event",
                "description": "The new session's first event, SessionForked, names the parent, "
                "the cut and the hash of the parent's event there (the fork's chain covers the "
                "link); its history is referenced, not copied. A run started in the fork continues "
                "from the parent's state at the cut. The same fork again answers the same event.",
                "parameters": [session],
                "requestBody": _body("ForkRequest"),
                "responses": {
                    "201": {"description": "Forked", "content": _json("ForkAccepted")},
                    **_problems(400, 408, 409, 413, 415, 422, jwt=jwt),
                },
            }
        },
        "/sessions/{sessionId}/usage": {
            "get": {
                "operationId": "sessionUsage",
                "summary": "A session's runs with their tokens and cost totalled",
                "parameters": [session],
                "responses": {
                    "200": {"description": "The totals", "content": _json("SessionUsageResponse")},
                    **_problems(jwt=jwt),
                },
            }
        },
        "/blobs/{sha256}": {
            "get": {
                "operationId": "getBlob",
                "summary": "A value an event keeps in the blob store (its `…Ref`)",
                "description": "The canonical JSON bytes whose SHA-256 an event's `resultRef`, "
                "`messageRef`, `answerRef` or `payloadRef` names, checked against that hash "
                "before they are sent. Only blobs the caller's tenant's events reference; they "
                "never change, so they may be cached for good.",
                "parameters": [{
                    "name": "sha256", "in": "path", "required": True,
                    "description": "The reference's sha256.",
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                }],
                "responses": {
                    "200": {
                        "description": "The value, as JSON",
                        "content": {"application/json": {"schema": {}}},
                    },
                    **_problems(jwt=jwt),
                },
            }
        },
        "/usage": {
            "get": {
                "operationId": "tenantUsage",
                "summary": "The caller's tenant's tokens and cost per model and UTC day",
                "description": "From the read models, so it trails the log by the projector's "
                "lag. Cost is in millionths of the price table's currency.",
                "parameters": [
                    _day_param("since", "First day included (YYYY-MM-DD)."),
                    _day_param("until", "Last day included (YYYY-MM-DD)."),
                ],
                "responses": {
                    "200": {"description": "Usage per day", "content": _json("UsageResponse")},
                    **_problems(422, jwt=jwt),
                },
            }
        },
        "/ops/overview": {
            "get": {
                "operationId": "opsOverview",
                "summary": "Operators: runners, shards, due work, projector lag, runs by status "
                "and every tenant's usage, as of one database snapshot",
                "description": "It spans tenants, so with AGENTLANE_AUTH=jwt the token must "
                "carry the operator claim (AGENTLANE_OPERATOR_CLAIM); a tenant's token gets 403. "
                "Every part is bounded: the runners and shards of the fleet (beyond 1024 shards "
                "only the notable ones), ended runs over the last minute's newest events, at most "
                "1000 usage rows.",
                "parameters": [
                    _query_param("days", "Days of usage, today (UTC) included.", 1, MAX_DAYS),
                ],
                "responses": {
                    "200": {"description": "The overview", "content": _json("OpsOverview")},
                    **_problems(422, *((403,) if jwt else ()), jwt=jwt),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "The process is up",
                "security": [],
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "ready",
                "summary": "Database reachable and migrations applied",
                "security": [],
                "responses": {
                    status: {
                        "description": description,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                    for status, description in (("200", "ready"), ("503", "not ready"))
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "agentlane command API",
            "version": "1",
            "description": "Commands and reads of durable agent runs. Errors are "
            "application/problem+json (RFC 9457).",
        },
        "paths": paths,
        "components": {"schemas": top.get("$defs", {})},
    }
    if jwt:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        }
        document["security"] = [{"bearer": []}]
    return document
