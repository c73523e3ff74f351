"""ecs/: activities -> ECS documents, field for field against the seed's tables (D23-D25)."""

from __future__ import annotations

import dataclasses

import base64
import json

import pytest

from reference_agent.activity import (
    Ancestry,
    FileActivity,
    ProcessActivity,
    ProcessSnapshot,
    TaskInfo,
)
from reference_agent.ecs import (
    BootClock,
    EventContext,
    file_documents,
    nest,
    process_documents,
)
from reference_agent.ecs.common import CONDITIONAL, NOT_KNOWN_ON_A_NODE, flatten, iso_ns
from reference_agent.metadata.containers import (
    ContainerInfo,
    PodInfo,
    parse_image_reference,
)
from reference_agent.metadata.host import AgentFacts, HostFacts
from reference_agent.processes.entity_id import entity_id as process_entity_id
from reference_agent.system.procfs import round_to_tick

from .seed_fields import FILE_EVENT_FIELDS, PROCESS_EVENT_FIELDS

AGENT_ID = "7829f26d-c2d1-4eaf-a1ac-cd9cb9e12f75"
BOOT_WALL_NS = 1_679_300_000 * 10**9  # boot at 2023-03-20T08:13:20Z
BTIME = 1_679_300_000
SEC = 10**9

HOST = HostFacts(architecture="amd64", hostname="docker-custom-agent", name="docker-custom-agent",
                 os_kernel="5.10.161+ #1 SMP", os_name="Linux", os_type="linux",
                 boot_id="815a760f-8153-49e1-9d0b-da0d3b2a468c", id="1bb9e6a948dfb1c3cd38d1fdc8de4481",
                 ip=("127.0.0.1", "172.18.0.6"), mac=("32:a9:cc:26:4c:e5",), os_family="ubuntu",
                 os_platform="ubuntu", os_full="Ubuntu 20.04.5", os_version="20.04.5", pid_ns_ino=4026531836)


class Names:
    def user(self, container, uid):
        return {0: "root"}.get(uid)

    def group(self, container, gid):
        return {0: "root"}.get(gid)


def context(**kw):
    defaults = dict(host=HOST, agent=AgentFacts(id=AGENT_ID, version="8.8.0"),
                    clock=BootClock(boot_wall_ns=BOOT_WALL_NS, btime_s=BTIME), names=Names())
    defaults.update(kw)
    return EventContext(**defaults)


POD_CONTAINER = ContainerInfo(
    id="c" * 64, name="nginx_1", image=parse_image_reference("nginx"), init_pid=100,
    pod=PodInfo(name="webapp-proxy", namespace="default", uid="u1", labels={"app": "web"}, ip="172.18.0.6"))
PLAIN_CONTAINER = ContainerInfo(id="d" * 64, name="plain", image=parse_image_reference("busybox:1.36"), pod=None)

TASK = TaskInfo(pid=1916234, tid=1916234, ppid=1915529, uid=0, gid=0, cgroup_id=55, comm="vi",
                executable="/usr/bin/vi", start_time_ns=28_239 * SEC + 5, tty=True)
BASH = ProcessSnapshot(pid=1915529, start_time_ns=28_000 * SEC, executable="/bin/bash", args=("bash",), uid=0,
                       gid=0, tty=True, working_directory="/usr/share/elastic-agent")
ANCESTRY = Ancestry(parent=BASH, session_leader=BASH, entry_leader=BASH,
                    group_leader=ProcessSnapshot(pid=TASK.pid, start_time_ns=TASK.start_time_ns,
                                                 executable="/usr/bin/ls", args=("ls", "--color=auto"),
                                                 uid=0, gid=0, tty=True, working_directory="/w"),
                    working_directory="/usr/share/elastic-agent")


def file_activity(**kw):
    defaults = dict(operation="createFile", event_action="creation", path="/home/workspace/project/script.ts",
                    mount="root", trace_point="lsm__file_open", selectors=("binModifications",),
                    actions=frozenset({"log"}), blocked=False, task=TASK, timestamp_ns=28_240 * SEC + 520 * 10**6)
    defaults.update(kw)
    return FileActivity(**defaults)


def process_activity(**kw):
    defaults = dict(operation="exec", selectors=("interactiveSessions",), actions=frozenset({"log"}),
                    blocked=False, task=TASK,
                    timestamp_ns=28_240 * SEC + 520 * 10**6, args=("ls", "--color=auto"),
                    previous_executable="/bin/bash", previous_args=("bash",), trace_point="sched_process_exec")
    defaults.update(kw)
    return ProcessActivity(**defaults)


def present(flat: dict, field: str) -> bool:
    if field in flat:
        return True
    # process.previous.args/executable: the seed lists the flattened view of an object array.
    head, _, leaf = field.rpartition(".")
    return isinstance(flat.get(head), list) and all(isinstance(x, dict) and leaf in x for x in flat[head])


CTX_FULL = dict(package_policy_id="4c9cbba0-c812-11ed-a8dd-91ec403e4f03", package_policy_version=2,
                cluster_id="12345", cluster_name="website")


@pytest.mark.parametrize("kind", ["file", "process"])
def test_every_seed_field_is_produced_or_documented(kind):
    ctx = context(**CTX_FULL)
    if kind == "file":
        docs = file_documents(ctx, file_activity(), POD_CONTAINER, ANCESTRY)
        seed = FILE_EVENT_FIELDS
    else:
        # process.previous belongs to exec events, process.end to end events: the table is their union.
        docs = (process_documents(ctx, process_activity(), POD_CONTAINER, ANCESTRY)
                + process_documents(ctx, process_activity(operation="end"), POD_CONTAINER, ANCESTRY))
        seed = PROCESS_EVENT_FIELDS
    flat: dict = {}
    for doc in docs:
        flat.update(flatten(json.loads(json.dumps(doc.nested()))))  # through JSON, as written
    missing = [f for f in seed if not present(flat, f) and f not in NOT_KNOWN_ON_A_NODE]
    assert missing == []
    faked = [f for f in NOT_KNOWN_ON_A_NODE if f in flat]
    assert faked == []


def test_conditional_fields_absent_when_not_configured():
    flat = file_documents(context(), file_activity(), POD_CONTAINER)[0].fields
    assert [f for f in CONDITIONAL if f in flat] == []


def test_file_event_values_like_the_seed():
    ctx = context(**CTX_FULL)
    doc = file_documents(ctx, file_activity(), POD_CONTAINER, ANCESTRY)[0]
    f = doc.fields
    assert doc.data_stream == "logs-cloud_defend.file-default"
    entity = base64.b64decode(f["process.entity_id"]).decode()
    # agent-pid-start: the process table's formula (epoch ns, tick resolution), shared with it.
    assert entity == f"{AGENT_ID}-1916234-{BTIME * SEC + 28_239 * SEC}"
    assert f["process.entity_id"] == process_entity_id(AGENT_ID, 1916234, BTIME * SEC + round_to_tick(TASK.start_time_ns))
    expected = {
        "@timestamp": "2023-03-20T16:04:00.520Z",
        "agent.id": AGENT_ID, "agent.type": "cloud-defend", "agent.version": "8.8.0",
        "cloud_defend.matched_selectors": ["binModifications"],
        "cloud_defend.package_policy_id": "4c9cbba0-c812-11ed-a8dd-91ec403e4f03",
        "cloud_defend.package_policy_version": 2, "cloud_defend.package_policy_revision": 2,
        "cloud_defend.trace_point": "lsm__file_open", "cloud_defend.hook_point": "lsm__file_open",
        "container.id": "c" * 64, "container.name": "nginx_1",
        "container.image.name": "nginx", "container.image.tag": ["latest"],
        "data_stream.dataset": "cloud_defend.file", "data_stream.namespace": "default", "data_stream.type": "logs",
        "ecs.version": "8.7.0",
        "event.action": "creation", "event.category": ["file"], "event.dataset": "cloud_defend.file",
        "event.kind": "event", "event.type": ["creation"],
        "file.extension": "ts", "file.name": "script.ts", "file.path": "/home/workspace/project/script.ts",
        "group.id": "0", "group.name": "root",
        "message": "cloud-defend file event",
        "orchestrator.cluster.id": "12345", "orchestrator.cluster.name": "website",
        "orchestrator.namespace": "default", "orchestrator.resource.ip": ["172.18.0.6"],
        "orchestrator.resource.name": "webapp-proxy", "orchestrator.resource.type": "pod",
        "orchestrator.resource.label": {"app": "web"}, "orchestrator.type": "kubernetes",
        "process.executable": "/usr/bin/vi", "process.name": "vi", "process.interactive": True,
        "process.pid": 1916234, "process.parent.pid": 1915529,
        "process.user.id": "0", "process.user.name": "root", "user.id": "0", "user.name": "root",
    }
    assert {k: f[k] for k in expected} == expected
    assert f["process.parent.entity_id"] == f["process.session_leader.entity_id"] == f["process.entry_leader.entity_id"]
    assert f["process.group_leader.entity_id"] == f["process.entity_id"]
    assert "process.parent.executable" not in f  # file events: relatives by entity id only (seed)


def test_log_and_alert_give_two_documents_d23():
    docs = file_documents(context(), file_activity(actions=frozenset({"log", "alert", "block"}), blocked=True),
                          PLAIN_CONTAINER)
    assert [d.data_stream for d in docs] == ["logs-cloud_defend.file-default", "logs-cloud_defend.alerts-default"]
    event, alert = (dict(d.fields) for d in docs)
    assert event["event.id"] != alert["event.id"]
    assert (event["event.kind"], alert["event.kind"]) == ("event", "alert")
    assert event["event.type"] == alert["event.type"] == ["creation", "denied"]
    assert alert["event.category"] == ["file"]  # D24: the alert keeps its operation's category
    differing = {k for k in event.keys() | alert.keys() if event.get(k) != alert.get(k)}
    assert differing == {"event.id", "event.kind", "event.dataset", "data_stream.dataset"}


@pytest.mark.parametrize(
    "actions, streams",
    [
        ({"log"}, ["logs-cloud_defend.process-prod"]),
        ({"alert"}, ["logs-cloud_defend.alerts-prod"]),
        ({"alert", "block"}, ["logs-cloud_defend.alerts-prod"]),
    ],
)
def test_routing_by_action(actions, streams):
    docs = process_documents(context(namespace="prod"), process_activity(actions=frozenset(actions)), PLAIN_CONTAINER)
    assert [d.data_stream for d in docs] == streams
    assert all(d.fields["data_stream.namespace"] == "prod" for d in docs)


@pytest.mark.parametrize(
    "operation, action, expected",
    [
        ("createFile", "creation", ["creation"]),
        ("createExecutable", "creation", ["creation"]),
        ("modifyFile", "modification", ["change"]),
        ("modifyExecutable", "modification", ["change"]),
        ("deleteFile", "deletion", ["deletion"]),
        ("deleteFile", "rename", ["deletion"]),
        ("createFile", "rename", ["change"]),
        ("modifyExecutable", "rename", ["change"]),
        ("createFile", "link", ["creation"]),
    ],
)
def test_file_event_type(operation, action, expected):
    doc = file_documents(context(), file_activity(operation=operation, event_action=action), PLAIN_CONTAINER)[0]
    assert doc.fields["event.type"] == expected
    assert doc.fields["event.action"] == action


def test_unknown_file_action_is_refused():
    with pytest.raises(ValueError):
        file_documents(context(), file_activity(event_action="chmod"), PLAIN_CONTAINER)


@pytest.mark.parametrize("operation, expected", [("fork", ["start"]), ("exec", ["start"]), ("end", ["end"])])
def test_process_event_type(operation, expected):
    doc = process_documents(context(), process_activity(operation=operation), PLAIN_CONTAINER)[0]
    assert doc.fields["event.type"] == expected
    assert doc.fields["event.action"] == operation
    assert doc.fields["event.category"] == ["process"]
    assert ("process.end" in doc.fields) == (operation == "end")
    assert ("process.previous" in doc.fields) == (operation == "exec")


def test_incomplete_paths_are_flagged_d30():
    """A tail the kernel could not resolve completely is marked, in either kind of event; a
    complete path carries no flag at all."""
    tail = "d/d/f"
    file_doc = file_documents(context(), file_activity(path=tail, path_truncated=True), PLAIN_CONTAINER)[0]
    assert (file_doc.fields["file.path"], file_doc.fields["cloud_defend.path_truncated"]) == (tail, True)
    proc_doc = process_documents(context(), process_activity(path_truncated=True), PLAIN_CONTAINER)[0]
    assert proc_doc.fields["cloud_defend.path_truncated"] is True
    assert "cloud_defend.path_truncated" not in file_documents(context(), file_activity(), PLAIN_CONTAINER)[0].fields
    assert "cloud_defend.path_truncated" not in process_documents(context(), process_activity(), PLAIN_CONTAINER)[0].fields


def test_blocked_exec_is_denied():
    doc = process_documents(context(), process_activity(actions=frozenset({"alert", "block"}), blocked=True),
                            PLAIN_CONTAINER)[0]
    assert doc.fields["event.type"] == ["start", "denied"]


def test_exec_fields():
    f = process_documents(context(), process_activity(), POD_CONTAINER, ANCESTRY)[0].fields
    assert f["process.args"] == ["ls", "--color=auto"]
    assert f["process.previous"] == [{"executable": "/bin/bash", "args": ["bash"]}]
    assert f["process.parent.same_as_process"] is False
    assert f["process.group_leader.same_as_process"] is True
    assert f["process.entry_leader.entry_meta.type"] == "container"
    assert f["process.parent.start"] == iso_ns(BOOT_WALL_NS + 28_000 * SEC)
    assert f["process.working_directory"] == "/usr/share/elastic-agent"


def test_end_without_actions_still_reaches_the_process_stream_d20():
    docs = process_documents(context(), process_activity(operation="end", actions=frozenset()), PLAIN_CONTAINER)
    assert [d.data_stream for d in docs] == ["logs-cloud_defend.process-default"]


def test_only_known_facts():
    """Host process, unknown user, no ancestry, no trace point: those fields are omitted."""
    task = TaskInfo(pid=5, tid=6, ppid=1, uid=1234, gid=1234, cgroup_id=1, comm="x", executable="/opt/x",
                    start_time_ns=SEC, tty=False)
    f = process_documents(context(**CTX_FULL), process_activity(task=task, trace_point=None, args=()), None)[0].fields
    for absent in ("container.id", "orchestrator.cluster.id", "orchestrator.type", "user.name", "group.name",
                   "process.parent.entity_id", "cloud_defend.trace_point", "cloud_defend.hook_point", "process.args"):
        assert absent not in f
    assert f["user.id"] == "1234" and f["process.thread.id"] == 6
    assert f["process.name"] == "x"  # D16: basename of the executable, not comm


def test_unknown_executable_is_omitted_not_empty():
    """The kernel side reports "" when the process exited before /proc was read: no
    process.executable/name rather than an empty string (event-decisions: never faked)."""
    task = dataclasses.replace(TASK, executable="")
    f = file_documents(context(), file_activity(task=task), PLAIN_CONTAINER)[0].fields
    assert "process.executable" not in f and "process.name" not in f
    assert f["process.pid"] == TASK.pid


def test_not_in_kubernetes_has_no_orchestrator_fields():
    f = file_documents(context(**CTX_FULL), file_activity(), PLAIN_CONTAINER)[0].fields
    assert not [k for k in f if k.startswith("orchestrator.")]
    assert f["container.image.name"] == "busybox" and f["container.image.tag"] == ["1.36"]


def test_boot_clock_defaults_are_consistent():
    clock = BootClock()
    now = clock.wall_ns(__import__("time").clock_gettime_ns(__import__("time").CLOCK_BOOTTIME))
    assert abs(now - __import__("time").time_ns()) < 5 * SEC
    with open("/proc/stat") as stat:
        btime = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
    assert clock.btime_s == btime


def test_nest_and_flatten():
    dotted = {"a.b": 1, "a.c": [1], "@timestamp": "t", "x": {"k": 1}}
    assert nest(dotted) == {"a": {"b": 1, "c": [1]}, "@timestamp": "t", "x": {"k": 1}}
    with pytest.raises(ValueError):
        nest({"a": 1, "a.b": 2})
    assert flatten(nest({"a.b": 1, "c": [{"d": 1}]})) == {"a.b": 1, "c": [{"d": 1}]}


def test_nest_of_documents_with_the_same_keys_gives_each_its_own_objects():
    # nest() compiles one builder per key sequence: the second document must not share the
    # first one's objects, and a collision must raise every time, not only the first.
    first = nest({"a.b": 1, "a.c.d": 2, "e": "x"})
    second = nest({"a.b": 3, "a.c.d": 4, "e": "y"})
    assert first == {"a": {"b": 1, "c": {"d": 2}}, "e": "x"}
    assert second == {"a": {"b": 3, "c": {"d": 4}}, "e": "y"}
    second["a"]["c"]["d"] = 5
    assert first["a"]["c"]["d"] == 2
    for _ in range(2):
        with pytest.raises(ValueError):
            nest({"a": 1, "a.b": 2})
    assert nest({"quote'key.x": 1}) == {"quote'key": {"x": 1}}


def test_nest_with_object_values_is_the_generic_walk_whichever_path_it_takes():
    # Labels are an object value: a compiled builder may take it as a leaf, unless another
    # key lies below it (the generic walk merges those into it).
    for _ in range(2):
        assert nest({"a.b": 1, "labels": {"app": "web"}, "e": "x"}) == {"a": {"b": 1}, "labels": {"app": "web"}, "e": "x"}
        assert nest({"labels": {"app": "web"}, "labels.tier": "front"}) == {"labels": {"app": "web", "tier": "front"}}
        assert nest({"x.y": {"k": 1}, "x.z": 2}) == {"x": {"y": {"k": 1}, "z": 2}}
    with pytest.raises(ValueError):
        nest({"labels": "not an object", "labels.tier": "front"})


@pytest.mark.parametrize("path, name, extension", [
    ("/a/script.ts", "script.ts", "ts"), ("/root/.bashrc", ".bashrc", None), ("/x/a.tar.gz", "a.tar.gz", "gz"),
    ("/usr/bin/evil", "evil", None), ("/x/a.", "a.", None),
])
def test_file_name_and_extension(path, name, extension):
    f = file_documents(context(), file_activity(path=path), PLAIN_CONTAINER)[0].fields
    assert f["file.name"] == name and f.get("file.extension") == extension


def test_iso_timestamps():
    assert iso_ns(1_679_328_239_520_123_456) == "2023-03-20T16:03:59.520Z"
    assert iso_ns(1_679_328_239_000_000_000) == "2023-03-20T16:03:59.000Z"


def test_process_events_carry_hook_point_as_an_array_d31():
    f = process_documents(context(**CTX_FULL), process_activity(), None)[0].fields
    assert f["cloud_defend.trace_point"] == "sched_process_exec"
    assert f["cloud_defend.hook_point"] == ["sched_process_exec"]
    assert f["cloud_defend.package_policy_revision"] == f["cloud_defend.package_policy_version"] == 2
    assert f["host.pid_ns_ino"] == "4026531836"  # ECS keyword -> JSON string


def test_event_ids_are_random_version_4_uuids():
    import uuid

    from reference_agent.ecs.common import random_uuid

    ids = [random_uuid() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    # every hex digit of the random part occurs: no position stuck (the variant nibble is 8..b)
    assert {text[19] for text in ids} == set("89ab")
    assert {text[0] for text in ids} == set("0123456789abcdef")


def test_a_new_container_object_gets_its_own_fields_not_a_cached_neighbours():
    """Container fields are built once per container object; a metadata change (new labels)
    is a new object and shows in the next document."""
    ctx = context()
    def labels(container):
        return file_documents(ctx, file_activity(), container)[0].nested().get("orchestrator", {}).get("resource", {}).get("label")

    relabelled = dataclasses.replace(POD_CONTAINER, pod=dataclasses.replace(POD_CONTAINER.pod, labels={"app": "db"}))
    assert labels(POD_CONTAINER) == {"app": "web"}
    assert labels(relabelled) == {"app": "db"}
    assert labels(POD_CONTAINER) == {"app": "web"}
    plain = flatten(file_documents(ctx, file_activity(), PLAIN_CONTAINER)[0].nested())
    assert plain["container.id"] == "d" * 64 and labels(PLAIN_CONTAINER) is None


def test_relatives_and_entity_ids_are_the_same_built_twice_or_from_cache():
    ctx = context()
    first = process_documents(ctx, process_activity(), POD_CONTAINER, ANCESTRY)[0].nested()
    second = process_documents(ctx, process_activity(), POD_CONTAINER, ANCESTRY)[0].nested()
    fresh = process_documents(context(), process_activity(), POD_CONTAINER, ANCESTRY)[0].nested()
    for doc in (second, fresh):
        doc["event"]["id"] = first["event"]["id"]
        doc["event"]["created"] = first["event"]["created"]
    assert first == second == fresh
    moved = dataclasses.replace(ANCESTRY, parent=dataclasses.replace(BASH, pid=7, working_directory="/tmp"))
    third = flatten(process_documents(ctx, process_activity(), POD_CONTAINER, moved)[0].nested())
    assert third["process.parent.pid"] == 7 and third["process.parent.working_directory"] == "/tmp"
    assert third["process.parent.entity_id"] == process_entity_id(AGENT_ID, 7, BTIME * SEC + round_to_tick(28_000 * SEC))
