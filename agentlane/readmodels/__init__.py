"""The CQRS read models: ``read_runs``, ``read_sessions``, ``read_usage_daily`` (ddl/0020).

    tables       names, columns, rows to and from fold states; a rebuild's table operations
    projection   a batch of events folded into the tables (the projector's write)
    queries      ReadModels: the reads of the command API and operators
    audit        the audit's reads inside its snapshot

The package owns these tables: no SQL about them is written anywhere else. Every table here is
derived from events (docs/design.md invariant 1); ``agentlane replay rebuild`` recreates them.
"""

from agentlane.readmodels.projection import apply_events
from agentlane.readmodels.queries import ReadModels
from agentlane.readmodels.tables import (
    LIVE_TABLES,
    READ_MODEL_TABLES,
    READ_MODELS_CHECKPOINT,
    RUN_COLUMNS,
    RUNS_TABLE,
    SESSION_COLUMNS,
    SESSIONS_TABLE,
    USAGE_COLUMNS,
    USAGE_TABLE,
    ReadModelTables,
    create_empty,
    lock_live,
    run_from_row,
    run_to_row,
    session_from_row,
    session_to_row,
    swap_in,
)

__all__ = [
    # the tables
    "LIVE_TABLES",
    "READ_MODELS_CHECKPOINT",
    "READ_MODEL_TABLES",
    "RUNS_TABLE",
    "RUN_COLUMNS",
    "SESSIONS_TABLE",
    "SESSION_COLUMNS",
    "USAGE_COLUMNS",
    "USAGE_TABLE",
    "ReadModelTables",
    "run_from_row",
    "run_to_row",
    "session_from_row",
    "session_to_row",
    # writing them
    "apply_events",
    "create_empty",
    "lock_live",
    "swap_in",
    # reading them
    "ReadModels",
]
