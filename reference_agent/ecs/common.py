"""What file and process events share: host/agent/container/orchestrator/policy fields,
process identity, timestamps, and the D23 routing of one activity into one or two documents.

Documents are built with dotted ECS names (easy to compare with the seed's tables) and turned
into nested JSON objects by `nest()` just before they are written, as Elasticsearch documents
usually are.

Fields of the seed's tables that are never produced, each with the reason, are listed in
NOT_KNOWN_ON_A_NODE; those produced only when configured in CONDITIONAL. Fields produced beyond
the seed's tables (ECS names, known facts): container.name, container.runtime, orchestrator.type,
orchestrator.resource.label, process.parent.pid, process.thread.id, process.args_count.

Types follow ECS 8.x (D25): arrays for event.type, event.category, host.ip, host.mac,
process.args, container.image.tag, orchestrator.resource.ip, orchestrator.resource.label,
cloud_defend.matched_selectors; process.previous is an array of objects; ids (user.id,
group.id) and every other field ECS types as keyword (host.pid_ns_ino) are strings.

D31: beside the seed's names, the names Elastic's cloud_defend package (1.2.x) indexes:
cloud_defend.hook_point (an array on process events, where the package maps it) beside
cloud_defend.trace_point, cloud_defend.package_policy_revision beside
cloud_defend.package_policy_version.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

from reference_agent.activity import Ancestry, ProcessSnapshot, TaskInfo
from reference_agent.metadata.containers import ContainerInfo
from reference_agent.metadata.host import AgentFacts, HostFacts
from reference_agent.processes.entity_id import entity_id as process_entity_id
from reference_agent.system.procfs import round_to_tick

ECS_VERSION = "8.7.0"

# Seed fields left out, with the reason. Tests check every seed field is produced or listed.
NOT_KNOWN_ON_A_NODE: Mapping[str, str] = {
    "cloud.account.id": "needs a cloud metadata service; never faked",
    "cloud.account.name": "needs a cloud metadata service; never faked",
    "cloud.availability_zone": "needs a cloud metadata service; never faked",
    "cloud.project.id": "needs a cloud metadata service; never faked",
    "cloud.project.name": "needs a cloud metadata service; never faked",
    "cloud.provider": "needs a cloud metadata service; never faked",
    "cloud.region": "needs a cloud metadata service; never faked",
    "event.agent_id_status": "set by Fleet Server's ingest pipeline, not by the agent",
    "event.ingested": "set by the Elasticsearch ingest pipeline at indexing time",
    "orchestrator.resource.parent.type": "pod owner (ReplicaSet...) is not in container labels",
}
# Produced only when configured (agent config) or when the container is a pod.
CONDITIONAL: Mapping[str, str] = {
    "orchestrator.cluster.id": "agent config cluster_id",
    "orchestrator.cluster.name": "agent config cluster_name",
    "cloud_defend.package_policy_id": "agent config package_policy_id",
    "cloud_defend.package_policy_version": "agent config package_policy_version",
    "cloud_defend.package_policy_revision": "agent config package_policy_version (D31)",
}

DATASET_FILE = "cloud_defend.file"
DATASET_PROCESS = "cloud_defend.process"
DATASET_ALERTS = "cloud_defend.alerts"


def data_stream_name(dataset: str, namespace: str) -> str:
    return f"logs-{dataset}-{namespace}"


class BootClock:
    """Boot-relative nanoseconds (bpf_ktime_get_boot_ns, task->start_boottime) -> wall clock.

    The offset is taken once, so every event of one agent run converts a given kernel time to
    the same instant. Entity ids use /proc/stat `btime` (whole seconds, identical across agent
    restarts) plus the start rounded to the clock tick, the process table's formula
    (reference_agent/processes/entity_id.py), so a process keeps its entity id across agent
    restarts and whether it was seen by a BPF event or seeded from /proc.
    """

    def __init__(self, boot_wall_ns: int | None = None, btime_s: int | None = None) -> None:
        if boot_wall_ns is None:
            boot_wall_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        self.boot_wall_ns = boot_wall_ns
        self.btime_s = btime_s if btime_s is not None else _proc_btime() or boot_wall_ns // 1_000_000_000

    def wall_ns(self, boot_ns: int) -> int:
        return self.boot_wall_ns + boot_ns

    def iso(self, boot_ns: int) -> str:
        return iso_ns(self.wall_ns(boot_ns))

    def entity_start_ns(self, boot_ns: int) -> int:
        """Process start for entity ids: epoch ns from btime, at /proc's tick resolution."""
        return self.btime_s * 1_000_000_000 + round_to_tick(boot_ns)


def _proc_btime(path: Path = Path("/proc/stat")) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("btime "):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@lru_cache(maxsize=4096)
def _iso_second(epoch_s: int) -> str:
    # strftime dominates event building (benchmarks/agent_pipeline.py); events of one second share it.
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_ns(wall_ns: int) -> str:
    """RFC 3339 UTC with milliseconds, as the seed's examples: 2023-03-20T16:03:59.520Z."""
    return f"{_iso_second(wall_ns // 1_000_000_000)}.{(wall_ns // 1_000_000) % 1000:03d}Z"


class NameResolver(Protocol):
    def user(self, container: ContainerInfo | None, uid: int) -> str | None: ...
    def group(self, container: ContainerInfo | None, gid: int) -> str | None: ...


@dataclass(frozen=True)
class EventContext:
    """Everything an event needs besides the activity itself; built once per agent run."""

    host: HostFacts
    agent: AgentFacts
    clock: BootClock
    namespace: str = "default"
    package_policy_id: str | None = None
    package_policy_version: int | None = None
    cluster_id: str | None = None
    cluster_name: str | None = None
    names: NameResolver | None = None

    @cached_property
    def container_cache(self) -> dict[int, tuple[ContainerInfo, Mapping[str, Any]]]:
        """ecs.common's per-container fields, by object identity (bounded there)."""
        return {}

    @cached_property
    def relative_cache(self) -> dict[tuple[str, ProcessSnapshot], Mapping[str, Any]]:
        """ecs.common's per-snapshot relative fields (bounded there)."""
        return {}

    @cached_property
    def node_fields(self) -> Mapping[str, Any]:
        """agent.* and host.* (dotted), the same in every document of the run: built once.
        Documents share its values (host.ip, host.mac lists) and are never changed once built."""
        return {**self.agent.ecs(), **self.host.ecs()}

    @cached_property
    def _entity_ids(self) -> dict[tuple[int, int], str]:
        return {}

    def entity_id(self, pid: int, start_time_ns: int) -> str:
        """base64("<agent.id>-<pid>-<start>"), the seed's shape with the process table's start
        (epoch ns at tick resolution). Pass this to ProcessTable(entity_ids=...) so both agree.
        Every event names its process and up to four relatives, mostly the same few: an id
        once made is a lookup (bounded, as a node's live processes are)."""
        key = (pid, start_time_ns)
        cached = self._entity_ids.get(key)
        if cached is None:
            if len(self._entity_ids) >= ENTITY_ID_CACHE_SIZE:
                self._entity_ids.clear()
            cached = self._entity_ids[key] = process_entity_id(
                self.agent.id, pid, self.clock.entity_start_ns(start_time_ns))
        return cached

    def user_name(self, container: ContainerInfo | None, uid: int) -> str | None:
        return self.names.user(container, uid) if self.names else None

    def group_name(self, container: ContainerInfo | None, gid: int) -> str | None:
        return self.names.group(container, gid) if self.names else None


def basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def base_fields(ctx: EventContext, container: ContainerInfo | None, selectors: Iterable[str],
                timestamp_ns: int, trace_point: str | None, message: str, *,
                hook_point_array: bool = False) -> dict[str, Any]:
    """Fields every event has, before routing (D23) adds kind/data_stream/type.

    `hook_point_array`: process events carry cloud_defend.hook_point as an array (D31)."""
    fields: dict[str, Any] = {
        "@timestamp": ctx.clock.iso(timestamp_ns),
        "ecs.version": ECS_VERSION,
        "message": message,
        "event.created": iso_ns(time.time_ns()),
        "cloud_defend.matched_selectors": list(selectors),
    }
    if trace_point:
        fields["cloud_defend.trace_point"] = trace_point
        fields["cloud_defend.hook_point"] = [trace_point] if hook_point_array else trace_point
    if ctx.package_policy_id is not None:
        fields["cloud_defend.package_policy_id"] = ctx.package_policy_id
    if ctx.package_policy_version is not None:
        fields["cloud_defend.package_policy_version"] = ctx.package_policy_version
        fields["cloud_defend.package_policy_revision"] = ctx.package_policy_version
    fields.update(ctx.node_fields)
    fields.update(container_fields(ctx, container))
    return fields


def container_fields(ctx: EventContext, container: ContainerInfo | None) -> Mapping[str, Any]:
    """container.* and orchestrator.*, built once per container object (a metadata change
    makes a new one); the documents share the values and never change them."""
    if container is None:
        return {}
    cached = ctx.container_cache.get(id(container))
    if cached is not None and cached[0] is container:  # the object is held: its id stays its own
        return cached[1]
    fields = _container_fields(ctx, container)
    if len(ctx.container_cache) >= CONTAINER_CACHE_SIZE:
        ctx.container_cache.clear()
    ctx.container_cache[id(container)] = (container, fields)
    return fields


def _container_fields(ctx: EventContext, container: ContainerInfo) -> dict[str, Any]:
    fields: dict[str, Any] = {"container.id": container.id, "container.runtime": container.runtime}
    if container.name:
        fields["container.name"] = container.name
    if container.image is not None:
        fields["container.image.name"] = container.image.name
        fields["container.image.tag"] = [container.image.tag]  # ECS: container.image.tag is an array
    pod = container.pod
    if pod is not None:
        fields["orchestrator.type"] = "kubernetes"
        fields["orchestrator.resource.type"] = "pod"
        if pod.name:
            fields["orchestrator.resource.name"] = pod.name
        if pod.namespace:
            fields["orchestrator.namespace"] = pod.namespace
        if pod.ip:
            fields["orchestrator.resource.ip"] = [pod.ip]  # ECS: array of ip
        if pod.labels:
            # An object {key: value}: Elastic's cloud_defend index templates map this field as
            # `flattened`, which takes an object; ECS's "key:value" keyword array would not index (D31).
            fields["orchestrator.resource.label"] = dict(sorted(pod.labels.items()))
        if ctx.cluster_id is not None:
            fields["orchestrator.cluster.id"] = ctx.cluster_id
        if ctx.cluster_name is not None:
            fields["orchestrator.cluster.name"] = ctx.cluster_name
    return fields


def task_fields(ctx: EventContext, task: TaskInfo, container: ContainerInfo | None,
                executable: str | None = None) -> dict[str, Any]:
    """process.* of the acting task plus user.*/group.* (effective ids, D16)."""
    exe = executable if executable is not None else task.executable
    fields: dict[str, Any] = {
        "process.pid": task.pid,
        "process.entity_id": ctx.entity_id(task.pid, task.start_time_ns),
        "process.interactive": task.tty,
        "process.start": ctx.clock.iso(task.start_time_ns),
        "process.parent.pid": task.ppid,
        "user.id": str(task.uid),
        "group.id": str(task.gid),
    }
    if exe:  # "" = the kernel side could not tell (process gone before /proc was read): omit, never fake
        fields["process.executable"] = exe
        fields["process.name"] = basename(exe)  # D16: basename of the executable, not comm
    if task.tid != task.pid:
        fields["process.thread.id"] = task.tid
    user = ctx.user_name(container, task.uid)
    if user is not None:
        fields["user.name"] = user
    group = ctx.group_name(container, task.gid)
    if group is not None:
        fields["group.name"] = group
    return fields


RELATIVES = ("parent", "session_leader", "entry_leader", "group_leader")


def relative_fields(ctx: EventContext, task: TaskInfo, container: ContainerInfo | None,
                    ancestry: Ancestry | None, *, full: bool) -> dict[str, Any]:
    """process.<relative>.* from the process table; only what it knows.

    File events carry only the relatives' entity ids (seed table); process events the full set.
    """
    if ancestry is None:
        return {}
    fields: dict[str, Any] = {}
    if ancestry.working_directory and full:
        fields["process.working_directory"] = ancestry.working_directory
    for relation in RELATIVES:
        snap: ProcessSnapshot | None = getattr(ancestry, relation)
        if snap is None:
            continue
        prefix = f"process.{relation}."
        if not full:
            fields[prefix + "entity_id"] = ctx.entity_id(snap.pid, snap.start_time_ns)
            continue
        fields.update(_relative_own_fields(ctx, relation, snap))
        fields[prefix + "same_as_process"] = (snap.pid == task.pid and snap.start_time_ns == task.start_time_ns)
        if snap.uid is not None:
            name = ctx.user_name(container, snap.uid)
            if name is not None:
                fields[prefix + "user.name"] = name
        if snap.gid is not None:
            name = ctx.group_name(container, snap.gid)
            if name is not None:
                fields[prefix + "group.name"] = name
        if relation in ("entry_leader", "session_leader") and container is not None:
            # The seed's entry_meta.type: the session entered through the container runtime.
            fields[prefix + "entry_meta.type"] = "container"
    return fields


def _relative_own_fields(ctx: EventContext, relation: str, snap: ProcessSnapshot) -> Mapping[str, Any]:
    """process.<relation>.* that depend on the snapshot alone. The same few processes (a shell,
    the container's init) are the relatives of most events: built once per snapshot, their
    values shared by the documents, which are never changed once built."""
    key = (relation, snap)
    cached = ctx.relative_cache.get(key)
    if cached is not None:
        return cached
    prefix = f"process.{relation}."
    fields: dict[str, Any] = {
        prefix + "entity_id": ctx.entity_id(snap.pid, snap.start_time_ns),
        prefix + "pid": snap.pid,
        prefix + "start": ctx.clock.iso(snap.start_time_ns),
    }
    if snap.executable:  # None or "": unknown, omitted
        fields[prefix + "executable"] = snap.executable
        fields[prefix + "name"] = basename(snap.executable)
    if snap.args is not None:
        fields[prefix + "args"] = list(snap.args)
    if snap.tty is not None:
        fields[prefix + "interactive"] = snap.tty
    if snap.working_directory is not None:
        fields[prefix + "working_directory"] = snap.working_directory
    if snap.uid is not None:
        fields[prefix + "user.id"] = str(snap.uid)
    if snap.gid is not None:
        fields[prefix + "group.id"] = str(snap.gid)
    if len(ctx.relative_cache) >= RELATIVE_CACHE_SIZE:
        ctx.relative_cache.clear()
    ctx.relative_cache[key] = fields
    return fields


RELATIVE_CACHE_SIZE = 4096
ENTITY_ID_CACHE_SIZE = 16384
CONTAINER_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Document:
    """One ECS document bound for one data stream."""

    data_stream: str
    fields: Mapping[str, Any]  # dotted names

    def nested(self) -> dict[str, Any]:
        return nest(self.fields)


def route(fields: Mapping[str, Any], *, actions: frozenset[str], stream_dataset: str, category: str,
          event_type: list[str], blocked: bool, namespace: str) -> list[Document]:
    """D23: log -> the file/process stream (kind event), alert -> alerts stream (kind alert).

    Both -> two documents with distinct event.id, otherwise identical except event.kind and
    data_stream.*. Blocked -> "denied" in event.type of every document.
    """
    types = list(event_type)
    if blocked and "denied" not in types:
        types.append("denied")
    targets: list[tuple[str, str]] = []
    if "log" in actions:
        targets.append((stream_dataset, "event"))
    if "alert" in actions:
        targets.append((DATASET_ALERTS, "alert"))
    docs = []
    for dataset, kind in targets:
        doc = dict(fields)
        doc.update({
            "event.id": random_uuid(),
            "event.kind": kind,
            "event.category": [category],
            "event.type": list(types),
            "event.dataset": dataset,
            "data_stream.type": "logs",
            "data_stream.dataset": dataset,
            "data_stream.namespace": namespace,
        })
        docs.append(Document(data_stream_name(dataset, namespace), doc))
    return docs


def random_uuid() -> str:
    """str(uuid.uuid4()) in a quarter of its time (one per document: uuid.UUID's checks and
    int arithmetic were a tenth of the pipeline): 122 random bits, version 4, RFC 4122 variant."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}  # 10xx in the variant nibble


@lru_cache(maxsize=4096)
def _field_path(key: str) -> tuple[tuple[str, ...], str]:
    *parents, leaf = key.split(".")
    return tuple(parents), leaf


def _nest_generic(dotted: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():  # key order is irrelevant: the writer sorts keys
        parents, leaf = _field_path(key)
        node = out
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ValueError(f"ECS field {key!r} collides with a value at {part!r}")
            node = child
        if isinstance(node.get(leaf), dict) and not isinstance(value, dict):
            raise ValueError(f"ECS field {key!r} collides with an object")
        node[leaf] = value
    return out


def _expression(tree: Mapping[str, Any]) -> str:
    """A dict display of `tree` whose leaves (value indexes) become `v[i]`."""
    items = (f"{k!r}: {_expression(x) if isinstance(x, dict) else f'v[{x}]'}" for k, x in tree.items())
    return "{" + ", ".join(items) + "}"


# The documents of one agent have a few dozen distinct key sequences. For each, the nesting
# is worked out once (with the generic walk, so a collision raises the same error) and
# compiled into one dict display: building a document then costs what building its nested
# dicts costs, not a split and a walk per key (nest() was the pipeline's largest cost).
_PLANS: dict[tuple[str, ...], Callable[[tuple[Any, ...]], dict[str, Any]]] = {}
_MAX_PLANS = 1024


def _plan(keys: tuple[str, ...]) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    tree = _nest_generic({key: index for index, key in enumerate(keys)})
    build = eval(f"lambda v: {_expression(tree)}", {})  # keys are repr()-quoted literals
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[keys] = build
    return build


def _objects_stay_leaves(keys: tuple[str, ...], values: tuple[Any, ...]) -> bool:
    """Whether every object value (labels, say) is a leaf: no other key lies below it, which
    the generic walk would merge into it. Then a plan nests the document exactly as it would."""
    objects = [key + "." for key, value in zip(keys, values) if type(value) is dict]
    return not any(key.startswith(prefix) for prefix in objects for key in keys)


def nest(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """{"a.b": 1, "a.c": 2} -> {"a": {"b": 1, "c": 2}}; "@timestamp" stays top-level."""
    values = tuple(dotted.values())
    keys = tuple(dotted)
    build = _PLANS.get(keys)
    if build is None:
        if dict in map(type, values) and not _objects_stay_leaves(keys, values):
            return _nest_generic(dotted)  # an object value takes more fields
        build = _plan(keys)
    return build(values)


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inverse of nest() (lists of objects, e.g. process.previous, stay values)."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out
