"""FileActivity -> the ECS documents of the seed's "File Events" table (D23, D24, D25 and
the project's event decisions in docs/spec.md)."""

from __future__ import annotations

from reference_agent.activity import Ancestry, FileActivity
from reference_agent.ecs.common import (
    DATASET_FILE,
    Document,
    EventContext,
    base_fields,
    relative_fields,
    route,
    task_fields,
)
from reference_agent.metadata.containers import ContainerInfo

MESSAGE = "cloud-defend file event"

# event.action (D25) -> ECS event.type (the project's event decision, docs/spec.md); rename depends on the side.
_EVENT_TYPE = {"creation": "creation", "modification": "change", "deletion": "deletion", "link": "creation"}


def file_event_type(activity: FileActivity) -> list[str]:
    if activity.event_action == "rename":
        # D18: the deleted side of a rename is a deletion, the created/replaced side a change.
        return ["deletion"] if activity.operation == "deleteFile" else ["change"]
    try:
        return [_EVENT_TYPE[activity.event_action]]
    except KeyError:
        raise ValueError(f"unknown file event.action {activity.event_action!r}") from None


def file_documents(ctx: EventContext, activity: FileActivity, container: ContainerInfo | None,
                   ancestry: Ancestry | None = None) -> list[Document]:
    """The one or two documents (D23) for a file activity; none when no log/alert fired."""
    fields = base_fields(ctx, container, activity.selectors, activity.timestamp_ns, activity.trace_point, MESSAGE)
    fields.update(task_fields(ctx, activity.task, container))
    # The seed's file table names the acting user both as process.user.* and user.*.
    fields["process.user.id"] = fields["user.id"]
    if "user.name" in fields:
        fields["process.user.name"] = fields["user.name"]
    fields.update(relative_fields(ctx, activity.task, container, ancestry, full=False))
    name = activity.path.rpartition("/")[2]
    fields["event.action"] = activity.event_action
    fields["file.path"] = activity.path
    fields["file.name"] = name
    if activity.path_truncated:
        fields["cloud_defend.path_truncated"] = True  # D30: file.path is a tail, no leading '/'
    stem, dot, extension = name.rpartition(".")
    if dot and stem.strip(".") and extension:  # as PurePosixPath.suffix: not ".bashrc", not "a."
        fields["file.extension"] = extension  # ECS: without the dot
    return route(fields, actions=activity.actions, stream_dataset=DATASET_FILE, category="file",
                 event_type=file_event_type(activity), blocked=activity.blocked, namespace=ctx.namespace)
