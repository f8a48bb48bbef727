"""The projector: CQRS read models and the Pub/Sub fan-out, one active instance at a time."""

from projector.component import PUBLISH_CHECKPOINT, Projector, ProjectorOptions
from projector.errors import ProjectorError, PublishFailed
from projector.publisher import EventPublisher
from projector.rebuild import RebuildResult, rebuild_read_models

__all__ = [
    "PUBLISH_CHECKPOINT",
    "EventPublisher",
    "Projector",
    "ProjectorError",
    "ProjectorOptions",
    "PublishFailed",
    "RebuildResult",
    "rebuild_read_models",
]
