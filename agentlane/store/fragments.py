"""Conditions on the log for other owners' statements: SQL text about ``agent_events`` stays here.

A few statements must consult the log in the same round trip as a table of another owner (the run
index re-checks for commands while it suspends a run; the read models tell a fresh row from a
stale one; the audit finds read-model rows no event backs). Their owners splice these boolean
expressions in; each names its parameters or the alias of the row it is about.
"""

from __future__ import annotations

from agentlane.events import COMMAND_TYPES

_COMMAND_TYPES = ", ".join(f"'{kind}'" for kind in sorted(COMMAND_TYPES))


def commands_after(*, execution: str, seen: str) -> str:
    """A command (signal, cancel) for the run named by the SQL expression ``execution`` was
    appended after the ``seq`` in the expression ``seen`` (columns of the caller's statement)."""
    return (
        f"EXISTS (SELECT 1 FROM agent_events WHERE execution_id = {execution} "
        f"AND seq > {seen} AND event_type IN ({_COMMAND_TYPES}))"
    )


def run_has_events_after_last_seq(alias: str) -> str:
    """The run of row ``alias`` (``execution_id``, ``tenant_id``, ``last_seq``) has events after
    ``last_seq``: the row has not seen all of them."""
    return (
        f"EXISTS (SELECT 1 FROM agent_events e WHERE e.execution_id = {alias}.execution_id "
        f"AND e.tenant_id = {alias}.tenant_id AND e.seq > {alias}.last_seq)"
    )


def run_has_events(alias: str) -> str:
    """Some event names the run of row ``alias`` (``execution_id``, ``tenant_id``,
    ``session_id``)."""
    return (
        f"EXISTS (SELECT 1 FROM agent_events e WHERE e.execution_id = {alias}.execution_id "
        f"AND e.tenant_id = {alias}.tenant_id AND e.session_id = {alias}.session_id)"
    )


def session_has_events(alias: str) -> str:
    """The stream of row ``alias`` (``tenant_id``, ``session_id``) has events."""
    return (
        f"EXISTS (SELECT 1 FROM agent_events e "
        f"WHERE e.tenant_id = {alias}.tenant_id AND e.session_id = {alias}.session_id)"
    )


def run_workflow(alias: str) -> str:
    """The workflow name the run of row ``alias`` (``execution_id``) started with (NULL: not
    started yet)."""
    return (
        f"(SELECT s.payload ->> 'workflow' FROM agent_events s "
        f"WHERE s.execution_id = {alias}.execution_id AND s.event_type = 'RunStarted')"
    )


def run_version(alias: str) -> str:
    """The workflow version the run of row ``alias`` (``execution_id``) runs with: the last one
    an operator moved it to (``VersionMoved``), else the one it started with (NULL: not
    started yet)."""
    return (
        f"coalesce((SELECT m.payload ->> 'toVersion' FROM agent_events m "
        f"WHERE m.execution_id = {alias}.execution_id AND m.event_type = 'VersionMoved' "
        f"ORDER BY m.seq DESC LIMIT 1), (SELECT s.payload ->> 'version' FROM agent_events s "
        f"WHERE s.execution_id = {alias}.execution_id AND s.event_type = 'RunStarted'))"
    )
