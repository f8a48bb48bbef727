"""The projector: CQRS read models and the Pub/Sub fan-out, one active instance at a time."""

from projector.component import Projector, ProjectorOptions
from projector.errors import CheckpointMoved, LostLeadership, ProjectorError, PublishFailed
from projector.publisher import EventPublisher
from projector.readmodels import LIVE_TABLES, ReadModelTables, apply_events
from projector.rebuild import RebuildResult, rebuild_read_models

__all__ = [
    "LIVE_TABLES",
    "CheckpointMoved",
    "EventPublisher",
    "LostLeadership",
    "Projector",
    "ProjectorError",
    "ProjectorOptions",
    "PublishFailed",
    "ReadModelTables",
    "RebuildResult",
    "apply_events",
    "rebuild_read_models",
]
