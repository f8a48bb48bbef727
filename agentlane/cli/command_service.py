"""``agentlane command-service``: the HTTP command API as one process (what its container runs).

Admission limits (flag, else environment variable, else default; 0 disables a limit):

- ``--max-inflight`` / ``AGENTLANE_CMD_MAX_INFLIGHT`` (64): most requests in progress per instance;
- ``--latency-target`` / ``AGENTLANE_CMD_LATENCY_TARGET`` (0.25): seconds; the in-flight bound
  adapts (AIMD) between 2 and ``--max-inflight`` to keep admitted requests near it (0: fixed);
- ``--max-streams`` / ``AGENTLANE_CMD_MAX_STREAMS`` (1000): open SSE streams per instance;
- ``--rate`` / ``AGENTLANE_CMD_RATE`` (50): requests per second per tenant per instance;
- ``--burst`` / ``AGENTLANE_CMD_BURST`` (100): token-bucket size per tenant;
- ``--max-active-runs`` / ``AGENTLANE_CMD_MAX_ACTIVE_RUNS`` (100): a tenant's unfinished runs;
- ``--retry-after`` / ``AGENTLANE_CMD_RETRY_AFTER`` (1): Retry-After seconds when overloaded;
- ``--tenant-share`` / ``AGENTLANE_CMD_TENANT_SHARE`` (0.5): the most of the in-flight and stream
  bounds one tenant may hold (1: no share limit);
- ``--max-tenant-sockets`` / ``AGENTLANE_CMD_MAX_TENANT_SOCKETS`` (5000): WebSockets one tenant may
  hold open on a gateway process (``agentlane gateway`` and ``edge``);
- ``--max-model-calls`` / ``AGENTLANE_CMD_MAX_MODEL_CALLS`` (50) and ``--max-run-tokens`` /
  ``AGENTLANE_CMD_MAX_RUN_TOKENS`` (2,000,000): the most one run may use, recorded in each run
  accepted (through either door); a run at its cap fails;
- ``--max-run-seconds`` / ``AGENTLANE_CMD_MAX_RUN_SECONDS`` (86400): wall time from acceptance
  after which an unfinished run is cancelled (by its runner, with a ``CancelRequested``);
- ``--max-run-cost-micros`` / ``AGENTLANE_CMD_MAX_RUN_COST_MICROS`` (none): what one run's priced
  model calls may cost, in millionths of the price table's currency, checked before each call;
- ``--tenant-limits`` / ``AGENTLANE_CMD_TENANT_LIMITS`` (none): a JSON object of tenant ->
  its own ``rate``, ``burst``, ``maxActiveRuns``, ``maxModelCalls``, ``maxRunTokens``,
  ``maxRunSeconds``, ``maxRunCostMicros`` (each optional), e.g.
  ``{"acme": {"rate": 200, "maxActiveRuns": 1000}}``;
- ``--run-models`` / ``AGENTLANE_CMD_RUN_MODELS`` (none): comma-separated models a run may choose
  for itself (``options.model``); a run naming another is refused (422).

Rate and in-flight limits are in-process: each instance enforces its own share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from agentlane.auth import Authenticator
from agentlane.blobs import blobs_from_settings
from agentlane.db import database_of
from agentlane.errors import ConfigError
from agentlane.events import describe_validation_error
from agentlane.readmodels.tables import READ_MODELS_CHECKPOINT
from agentlane.service import metrics_registry, run_service
from agentlane.settings import Settings
from command_service import CommandService, Limits
from runners.membership import read_runner_rows


class _TenantLimits(BaseModel):
    """One tenant's own limits in ``AGENTLANE_CMD_TENANT_LIMITS`` (camelCase, like the API)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel)

    rate: float | None = Field(default=None, ge=0)
    burst: int | None = Field(default=None, ge=1)
    max_active_runs: int | None = Field(default=None, ge=0)
    max_model_calls: int | None = Field(default=None, ge=0)
    max_run_tokens: int | None = Field(default=None, ge=0)
    max_run_seconds: float | None = Field(default=None, ge=0)
    max_run_cost_micros: int | None = Field(default=None, ge=0)


def model_list(text: str) -> tuple[str, ...]:
    """``gpt-4.1-mini,gpt-4.1``: the models a run may choose; ValueError naming a bad one."""
    models = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in models:
        if not _MODEL_NAME.fullmatch(name):
            raise ValueError(f"not a model name: {name!r}")
    return models


def tenant_limits(text: str) -> dict[str, dict[str, float]]:
    """``{"tenant": {"rate": 200, ...}}`` as Limits field overrides; ValueError naming what is
    wrong."""
    try:
        parsed = TypeAdapter(dict[str, _TenantLimits]).validate_json(text)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, prefix="tenant limits")) from None
    return {
        tenant: {
            "rate_per_s" if name == "rate" else name: value
            for name, value in limits.model_dump(exclude_none=True).items()
        }
        for tenant, limits in parsed.items()
    }


#: Limits field -> (flag, environment variable, type)
#: What ``RunOptions.model`` admits (agentlane.events).
_MODEL_NAME = re.compile(r"[A-Za-z0-9._:/@+-]{1,128}")

_LIMIT_OPTIONS: dict[str, tuple[str, str, Any]] = {
    "max_inflight": ("--max-inflight", "AGENTLANE_CMD_MAX_INFLIGHT", int),
    "max_streams": ("--max-streams", "AGENTLANE_CMD_MAX_STREAMS", int),
    "latency_target_s": ("--latency-target", "AGENTLANE_CMD_LATENCY_TARGET", float),
    "rate_per_s": ("--rate", "AGENTLANE_CMD_RATE", float),
    "burst": ("--burst", "AGENTLANE_CMD_BURST", int),
    "max_active_runs": ("--max-active-runs", "AGENTLANE_CMD_MAX_ACTIVE_RUNS", int),
    "retry_after_s": ("--retry-after", "AGENTLANE_CMD_RETRY_AFTER", float),
    "tenant_share": ("--tenant-share", "AGENTLANE_CMD_TENANT_SHARE", float),
    "max_tenant_sockets": ("--max-tenant-sockets", "AGENTLANE_CMD_MAX_TENANT_SOCKETS", int),
    "max_model_calls": ("--max-model-calls", "AGENTLANE_CMD_MAX_MODEL_CALLS", int),
    "max_run_tokens": ("--max-run-tokens", "AGENTLANE_CMD_MAX_RUN_TOKENS", int),
    "max_run_seconds": ("--max-run-seconds", "AGENTLANE_CMD_MAX_RUN_SECONDS", float),
    "max_run_cost_micros": ("--max-run-cost-micros", "AGENTLANE_CMD_MAX_RUN_COST_MICROS", int),
    "tenants": ("--tenant-limits", "AGENTLANE_CMD_TENANT_LIMITS", tenant_limits),
    "run_models": ("--run-models", "AGENTLANE_CMD_RUN_MODELS", model_list),
}

#: The ``AGENTLANE_CMD_*`` variables, for the environment table of docs/contract.md.
LIMIT_ENV_VARS: frozenset[str] = frozenset(env for _, env, _ in _LIMIT_OPTIONS.values())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (port: PORT)")
    parser.add_argument(
        "--drain-grace", type=_argument(_seconds), default=30.0,
        help="on SIGTERM, seconds to end event streams and finish requests in flight before "
             "exiting (default 30; on Cloud Run less than its 10)",
    )
    defaults = Limits()
    for name, (flag, env, kind) in _LIMIT_OPTIONS.items():
        default = getattr(defaults, name) or "none"
        parser.add_argument(
            flag, dest=name, type=_argument(kind), default=None,
            help=f"admission limit (env {env}; default {default}; 0 = off)",
        )


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(f"must be more than 0 seconds, not {text}")
    return value


def _argument(kind: Any) -> Any:
    """``kind`` for argparse: its ValueError becomes the one-line usage error it deserves."""

    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def limits_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Limits:
    """Limits from flags, else the environment, else the defaults; ConfigError on bad values."""
    values: dict[str, Any] = {}
    for field in fields(Limits):
        flag, env, kind = _LIMIT_OPTIONS[field.name]
        value = getattr(args, field.name, None)
        if value is None and environ.get(env):
            try:
                value = kind(environ[env])
            except ValueError as exc:
                if kind in (tenant_limits, model_list):
                    raise ConfigError(f"{env}: {exc}") from None
                raise ConfigError(f"{env}: not a number: {environ[env]!r}") from None
        if value is None:
            continue
        if field.name not in ("tenants", "run_models") and value < 0:
            raise ConfigError(f"{flag} / {env} must not be negative")
        if field.name == "tenant_share" and not 0 < value <= 1:
            raise ConfigError(f"{flag} / {env} must be in (0, 1]")
        values[field.name] = value
    return Limits(**values)


def main(args: argparse.Namespace, settings: Settings) -> int:
    limits = limits_from(args, os.environ)
    asyncio.run(serve(settings, limits, host=args.host, drain_grace_s=args.drain_grace))
    return 0


def projector_checkpoints(settings: Settings) -> tuple[str, ...]:
    """The projector checkpoints that move in this deployment, for the operations overview: the
    read models', and on the pubsub bus the publishing's."""
    if settings.bus != "pubsub":
        return (READ_MODELS_CHECKPOINT,)
    from projector import PUBLISH_CHECKPOINT  # the Pub/Sub client comes with it: only then

    return (READ_MODELS_CHECKPOINT, PUBLISH_CHECKPOINT)


async def serve(
    settings: Settings, limits: Limits, *, host: str, drain_grace_s: float = 30.0
) -> None:
    """The command API alone in this process, on ``settings.port``, until SIGTERM/SIGINT."""
    registry = metrics_registry()
    async with database_of(settings, name="command-service") as db:
        service = CommandService(
            db=db,
            shards=settings.shards,
            authenticator=Authenticator.from_settings(settings),
            limits=limits,
            registry=registry,
            runners=read_runner_rows,
            checkpoints=projector_checkpoints(settings),
            blobs=blobs_from_settings(settings),
        )
        await run_service(
            [service], host=host, port=settings.port, registry=registry,
            grace_s=drain_grace_s, uvicorn_options={"backlog": 4096},
        )
