"""ProcessActivity -> the ECS documents of the seed's "Process Events" table (D20, D23, D24,
D25 and the project's event decisions in docs/spec.md)."""

from __future__ import annotations

from reference_agent.activity import Ancestry, ProcessActivity
from reference_agent.ecs.common import (
    DATASET_PROCESS,
    Document,
    EventContext,
    base_fields,
    relative_fields,
    route,
    task_fields,
)
from reference_agent.metadata.containers import ContainerInfo

MESSAGE = "cloud-defend process event"

_EVENT_TYPE = {"fork": "start", "exec": "start", "end": "end"}


def process_documents(ctx: EventContext, activity: ProcessActivity, container: ContainerInfo | None,
                      ancestry: Ancestry | None = None) -> list[Document]:
    """The one or two documents (D23) for a fork/exec/end.

    An `end` owed by D20 carries the actions of the fork/exec event it closes (the kernel side
    remembers them); if it arrives with no log/alert action it still goes to the process stream,
    because D20 requires the end of every process whose start was reported.
    """
    try:
        event_type = [_EVENT_TYPE[activity.operation]]
    except KeyError:
        raise ValueError(f"unknown process operation {activity.operation!r}") from None
    task = activity.task
    fields = base_fields(ctx, container, activity.selectors, activity.timestamp_ns, activity.trace_point, MESSAGE,
                         hook_point_array=True)
    fields.update(task_fields(ctx, task, container))
    fields.update(relative_fields(ctx, task, container, ancestry, full=True))
    fields["event.action"] = activity.operation
    if activity.path_truncated:
        fields["cloud_defend.path_truncated"] = True  # D30: process.executable is a tail
    if activity.args:
        fields["process.args"] = list(activity.args)
        fields["process.args_count"] = len(activity.args)
    if activity.operation == "end":
        fields["process.end"] = ctx.clock.iso(activity.timestamp_ns)
        if activity.exit_code is not None:
            fields["process.exit_code"] = activity.exit_code  # ECS: long
    if activity.operation == "exec" and activity.previous_executable is not None:
        previous: dict[str, object] = {"executable": activity.previous_executable}
        if activity.previous_args:
            previous["args"] = list(activity.previous_args)
        fields["process.previous"] = [previous]  # ECS: array of objects
    actions = activity.actions
    if activity.operation == "end" and not actions & {"log", "alert"}:
        actions = frozenset({"log"})
    return route(fields, actions=actions, stream_dataset=DATASET_PROCESS, category="process",
                 event_type=event_type, blocked=activity.blocked, namespace=ctx.namespace)
