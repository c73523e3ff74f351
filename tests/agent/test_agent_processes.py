"""Agent.step with a fake kernel backend and a process table over a fake /proc: sequences of
ProcessLifecycle + activity values (the kernel side's seam, docs/agent.md) give
exactly the expected documents: fork/exec with their tree, process.previous, D20 ends exactly
once for emitted processes, blocked exec/fork alerts with `denied`, interactive sessions, and
executables of exited processes filled from the table."""

from __future__ import annotations

import dataclasses
import json

import pytest
from processes.fakeproc import BTIME, CID, CONTAINER_CGROUP, FakeProc

from reference_agent.activity import (
    FileActivity,
    ProcessActivity,
    ProcessLifecycle,
    TaskInfo,
)
from reference_agent import agent as agent_module
from reference_agent.agent import Agent
from reference_agent.config import AgentConfig
from reference_agent.ecs import BootClock
from reference_agent.metadata.containers import ContainerCache
from reference_agent.metadata.host import HostFacts
from reference_agent.metadata.users import UserNames
from reference_agent.processes import EndLedger, ProcessTable
from reference_agent.system.procfs import NS_PER_TICK

from .fakes import FakeDockerClient, FakeKernelBackend

SEC = 10**9
HOST = HostFacts(architecture="amd64", hostname="node", name="node", os_kernel="6.1", os_name="Linux", os_type="linux")
POLICY = """process:
  selectors:
    - name: anyProcess
      operation: [fork, exec]
  responses:
    - match: [anyProcess]
      actions: [log]
"""
PROCESS = "logs-cloud_defend.process-default"
ALERTS = "logs-cloud_defend.alerts-default"
PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:4242:4242::/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:4242:\n"


class Node:
    """A fake node: containerd-shim (50) on the host, a container whose init is /bin/sh (200,
    session and group leader, the container's entry process), and the agent over it."""

    def __init__(self, tmp_path) -> None:
        self.fp = FakeProc(tmp_path)
        root = self.fp.make_root("container", PASSWD, GROUP)
        self.fp.add(50, 1, exe="/usr/bin/containerd-shim-runc-v2", args=["containerd-shim-runc-v2"], start_ticks=150,
                    cgroup="/system.slice/containerd.service")
        self.fp.add(200, 50, exe="/bin/sh", args=["sh", "-c", "sleep infinity"], start_ticks=200,
                    cgroup=CONTAINER_CGROUP, root=root, cwd="/srv")
        self.cg = self.fp.cgroup_id(CONTAINER_CGROUP)
        client = FakeDockerClient()
        client.add(CID, "debian:bookworm", pid=200, name="box")
        cache = ContainerCache(client, cgroup_root=self.fp.cgroup, proc_root=self.fp.proc)
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        self.out = tmp_path / "out"
        config = AgentConfig(output_dir=self.out, state_dir=tmp_path / "state")
        self.backend = FakeKernelBackend()
        self.clock = BootClock(boot_wall_ns=BTIME * SEC, btime_s=BTIME)
        self.agent = Agent(config, policy, self.backend, containers=cache, host=HOST, clock=self.clock,
                           watch_interval=3600, reconcile_interval=10**9, process_table=False)
        self.agent.start()
        # User names from the fake node's roots (the agent's default reads the real /proc).
        self.agent.ctx = dataclasses.replace(self.agent.ctx, names=UserNames(self.fp.proc, self.fp.host))
        # The agent's own table (entity ids from its context), over the fake /proc.
        self.table = ProcessTable(self.agent.ctx.agent.id, str(self.fp.proc), cgroup_root=str(self.fp.cgroup),
                                  host_root=str(self.fp.host), entity_ids=self.agent.ctx.entity_id)
        assert self.table.seed() == 2
        self.agent.processes = self.table

    def task(self, pid: int, ppid: int, exe: str, start_ticks: int, **kw) -> TaskInfo:
        """The kernel's view of a container task (start in full nanoseconds, not tick-rounded)."""
        fields = {"pid": pid, "tid": pid, "ppid": ppid, "uid": 0, "gid": 0, "cgroup_id": self.cg,
                  "comm": exe.rsplit("/", 1)[-1][:15], "executable": exe,
                  "start_time_ns": start_ticks * NS_PER_TICK + 4321, "tty": False}
        fields.update(kw)
        return TaskInfo(**fields)

    def feed(self, *values) -> dict[str, list[dict]]:
        """Queue the values as one poll batch, step once; the documents written, per stream."""
        before = {stream: len(docs) for stream, docs in self.documents().items()}
        for value in values:
            self.backend.queue.put(value)
        self.agent.step(0.01)
        return {stream: docs[before.get(stream, 0):] for stream, docs in self.documents().items()
                if docs[before.get(stream, 0):]}

    def documents(self) -> dict[str, list[dict]]:
        """The event streams' documents (the agent's own metrics-* streams are test_status.py's)."""
        return {path.stem: [json.loads(line) for line in path.read_text().splitlines()]
                for path in sorted(self.out.glob("logs-*.ndjson"))}

    def close(self) -> None:
        self.agent.close()


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path)
    yield n
    n.close()


def fork(task: TaskInfo, ts: int) -> ProcessLifecycle:
    return ProcessLifecycle(kind="fork", task=task, timestamp_ns=ts * SEC)


def exec_(task: TaskInfo, ts: int, *args: str) -> ProcessLifecycle:
    return ProcessLifecycle(kind="exec", task=task, timestamp_ns=ts * SEC, args=args)


def exit_(task: TaskInfo, ts: int, code: int | None = 0) -> ProcessLifecycle:
    return ProcessLifecycle(kind="exit", task=task, timestamp_ns=ts * SEC, exit_code=code)


def activity(operation: str, task: TaskInfo, ts: int, *, actions=("log",), blocked=False, args=(),
             selectors=("anyProcess",)) -> ProcessActivity:
    return ProcessActivity(operation=operation, selectors=selectors, actions=frozenset(actions), blocked=blocked,
                           task=task, timestamp_ns=ts * SEC, args=args,
                           trace_point={"fork": "sched_process_fork", "exec": "sched_process_exec"}[operation])


def test_fork_is_logged_with_the_child_and_its_parent(node: Node) -> None:
    child = node.task(210, 200, "/bin/sh", 300)
    docs = node.feed(fork(child, 3), activity("fork", child, 3))
    assert list(docs) == [PROCESS]
    [doc] = docs[PROCESS]
    proc = doc["process"]
    assert doc["event"]["action"] == "fork" and doc["event"]["type"] == ["start"]
    assert proc["pid"] == 210 and proc["executable"] == "/bin/sh" and proc["name"] == "sh"
    assert proc["args"] == ["sh", "-c", "sleep infinity"]  # a forked child runs its parent's program
    assert proc["entity_id"] == node.table.entity_id(210)
    assert proc["working_directory"] == "/srv"
    parent = proc["parent"]
    assert parent["pid"] == 200 and parent["executable"] == "/bin/sh" and parent["args"] == ["sh", "-c", "sleep infinity"]
    assert parent["entity_id"] == node.table.entity_id(200) != proc["entity_id"]
    assert parent["same_as_process"] is False
    assert parent["start"] == "2023-11-14T22:13:22.000Z"  # btime + 200 ticks
    assert proc["entry_leader"]["pid"] == 200 and proc["entry_leader"]["entry_meta"]["type"] == "container"
    assert proc["session_leader"]["pid"] == 200 and proc["group_leader"]["pid"] == 200
    assert proc["entry_leader"]["user"] == {"id": "0", "name": "root"}
    assert doc["container"]["id"] == CID and doc["user"]["id"] == "0"


def test_exec_carries_the_image_before_as_process_previous(node: Node) -> None:
    child = node.task(210, 200, "/bin/sh", 300)
    ran_true = dataclasses.replace(child, executable="/usr/bin/true", comm="true")
    docs = node.feed(fork(child, 3), exec_(ran_true, 4, "true", "-v"), activity("exec", ran_true, 4, args=("true", "-v")))
    [doc] = docs[PROCESS]
    assert doc["event"]["action"] == "exec"
    assert doc["process"]["executable"] == "/usr/bin/true" and doc["process"]["args"] == ["true", "-v"]
    assert doc["process"]["previous"] == [{"executable": "/bin/sh", "args": ["sh", "-c", "sleep infinity"]}]
    assert doc["process"]["parent"]["pid"] == 200


def test_end_exactly_once_for_a_process_with_fork_and_exec_events(node: Node) -> None:
    child = node.task(210, 200, "/bin/sh", 300)
    ran_true = dataclasses.replace(child, executable="/usr/bin/true")
    node.feed(fork(child, 3), activity("fork", child, 3), exec_(ran_true, 4, "true"), activity("exec", ran_true, 4))
    docs = node.feed(exit_(ran_true, 5))
    [end] = docs[PROCESS]
    assert end["event"]["action"] == "end" and end["event"]["type"] == ["end"]
    assert end["process"]["executable"] == "/usr/bin/true" and end["process"]["args"] == ["true"]
    assert end["process"]["end"] == "2023-11-14T22:13:25.000Z" and end["process"]["exit_code"] == 0
    assert end["process"]["pid"] == 210 and end["process"]["entity_id"] == node.agent.ctx.entity_id(210, child.start_time_ns)
    assert end["cloud_defend"]["matched_selectors"] == ["anyProcess"]
    assert end["cloud_defend"]["trace_point"] == "sched_process_exit"
    assert end["process"]["parent"]["pid"] == 200  # the tree is still described at the end
    assert node.feed(exit_(ran_true, 6)) == {}  # a repeated exit owes nothing more
    assert len(node.agent.ledger) == 0


def test_no_end_for_processes_without_emitted_events(node: Node) -> None:
    quiet = node.task(220, 200, "/bin/sh", 310)
    ran = dataclasses.replace(quiet, executable="/usr/bin/id")
    assert node.feed(fork(quiet, 3), exec_(ran, 4, "id"), exit_(ran, 5)) == {}
    assert 220 not in node.table  # gone from the table with its exit


def test_end_of_an_exec_only_emitted_process_and_not_of_its_quiet_sibling(node: Node) -> None:
    a = node.task(230, 200, "/bin/sh", 320)
    b = node.task(231, 200, "/bin/sh", 321)
    a_true = dataclasses.replace(a, executable="/usr/bin/true")
    b_true = dataclasses.replace(b, executable="/usr/bin/true")
    docs = node.feed(fork(a, 3), fork(b, 3), exec_(a_true, 4, "true"), activity("exec", a_true, 4),
                     exec_(b_true, 4, "true"), exit_(b_true, 5), exit_(a_true, 6))
    actions = [(d["event"]["action"], d["process"]["pid"]) for d in docs[PROCESS]]
    assert actions == [("exec", 230), ("end", 230)]


def test_end_goes_where_its_events_went(node: Node) -> None:
    """exec logged and alerted -> its end in both streams (scenario process-exec-log-and-alert)."""
    child = node.task(210, 200, "/bin/sh", 300)
    ran = dataclasses.replace(child, executable="/usr/bin/id")
    docs = node.feed(fork(child, 3), exec_(ran, 4, "id", "-u"), activity("exec", ran, 4, actions=("log", "alert")),
                     exit_(ran, 5))
    assert [d["event"]["action"] for d in docs[PROCESS]] == ["exec", "end"]
    assert [(d["event"]["action"], d["event"]["kind"]) for d in docs[ALERTS]] == [("exec", "alert"), ("end", "alert")]


def test_blocked_exec_is_an_alert_with_denied_and_its_process_still_ends(node: Node) -> None:
    child = node.task(210, 200, "/bin/sh", 300)
    refused = dataclasses.replace(child, executable="/tmp/payload", comm="payload")
    docs = node.feed(fork(child, 3), activity("exec", refused, 4, actions=("alert", "block"), blocked=True,
                                              args=("/tmp/payload",)))
    assert list(docs) == [ALERTS]
    [alert] = docs[ALERTS]
    assert alert["event"]["type"] == ["start", "denied"] and alert["event"]["kind"] == "alert"
    assert alert["event"]["category"] == ["process"] and alert["event"]["action"] == "exec"
    assert alert["process"]["executable"] == "/tmp/payload" and alert["process"]["args"] == ["/tmp/payload"]
    # The exec never happened: the process still runs the shell that attempted it.
    assert alert["process"]["previous"] == [{"executable": "/bin/sh", "args": ["sh", "-c", "sleep infinity"]}]
    assert node.table.image(child).executable == "/bin/sh"
    docs = node.feed(exit_(child, 5, code=None))
    assert list(docs) == [ALERTS]
    [end] = docs[ALERTS]
    assert end["event"]["type"] == ["end"] and end["process"]["executable"] == "/bin/sh"
    assert "exit_code" not in end["process"]  # unknown: omitted


def test_blocked_fork_is_an_alert_and_owes_no_end(node: Node) -> None:
    parent = node.task(200, 50, "/bin/sh", 200, uid=4242, gid=4242)
    docs = node.feed(activity("fork", parent, 3, actions=("alert", "block"), blocked=True))
    [alert] = docs[ALERTS]
    assert alert["event"]["type"] == ["start", "denied"] and alert["event"]["action"] == "fork"
    assert alert["user"] == {"id": "4242", "name": "app"}
    assert list(docs) == [ALERTS]
    assert node.feed(exit_(parent, 9)) == {}  # the parent's end is not owed by a fork that never happened


@pytest.mark.parametrize("tty", [True, False])
def test_interactive_session_from_docker_exec(node: Node, tty: bool) -> None:
    """`docker exec [-t] box sh -c 'true; exit 0'`: runc init (forked outside the container,
    unknown to the table) calls setsid and execs sh; sh forks and the child execs true."""
    shell = node.task(300, 60, "/usr/bin/dash", 400, tty=tty, sid=300, pgid=300)
    child = node.task(301, 300, "/usr/bin/dash", 401, tty=tty, sid=300, pgid=300)
    ran = dataclasses.replace(child, executable="/usr/bin/true")
    docs = node.feed(exec_(shell, 4, "sh", "-c", "true; exit 0"), fork(child, 4), exec_(ran, 5, "true"),
                     activity("exec", ran, 5))
    [doc] = docs[PROCESS]
    proc = doc["process"]
    assert proc["interactive"] is tty
    leader = proc["session_leader"]
    assert leader["pid"] == 300 and leader["executable"] == "/usr/bin/dash" and leader["interactive"] is tty
    assert leader["args"] == ["sh", "-c", "true; exit 0"] and leader["same_as_process"] is False
    assert proc["entry_leader"]["pid"] == 300  # its parent is outside the container
    assert proc["parent"]["pid"] == 300 and proc["group_leader"]["pid"] == 300


def test_file_document_gets_the_executable_of_an_exited_process_from_the_table(node: Node) -> None:
    child = node.task(240, 200, "/bin/sh", 330)
    touched = dataclasses.replace(child, executable="/usr/bin/touch")
    unread = dataclasses.replace(child, executable="")  # the kernel side could not read it
    write = FileActivity(operation="createFile", event_action="creation", path="/tmp/x", mount="root",
                         trace_point="lsm__path_mknod", selectors=("anyFile",), actions=frozenset({"log"}),
                         blocked=False, task=unread, timestamp_ns=5 * SEC)
    docs = node.feed(fork(child, 4), exec_(touched, 4, "touch", "/tmp/x"), write, exit_(touched, 6))
    [doc] = docs["logs-cloud_defend.file-default"]
    assert doc["process"]["executable"] == "/usr/bin/touch" and doc["process"]["name"] == "touch"
    assert doc["process"]["parent"]["entity_id"] == node.table.entity_id(200)
    assert doc["process"]["entry_leader"]["entity_id"] == node.table.entity_id(200)
    assert "executable" not in doc["process"]["parent"]  # file events: relatives' entity ids only (seed)
    assert list(docs) == ["logs-cloud_defend.file-default"]  # a file event owes no end


def test_unknown_pid_never_crashes_and_invents_nothing(node: Node) -> None:
    stranger = node.task(999, 998, "/usr/bin/true", 900)
    docs = node.feed(exit_(stranger, 2), activity("exec", stranger, 3))
    [doc] = docs[PROCESS]
    assert doc["process"]["pid"] == 999 and doc["process"]["executable"] == "/usr/bin/true"
    assert "previous" not in doc["process"] and "args" not in doc["process"]
    assert "session_leader" not in doc["process"] and "group_leader" not in doc["process"]
    assert doc["process"]["parent"] == {"pid": 998}  # only the kernel's ppid: the table knows no 998
    blank = node.task(997, 998, "", 901)
    docs = node.feed(activity("exec", blank, 4))
    assert "executable" not in docs[PROCESS][0]["process"]  # unknown to all: omitted, not ""


def test_memory_is_bounded_by_live_processes(node: Node) -> None:
    baseline = len(node.table)
    values: list = []
    for n in range(2000):
        t = node.task(10_000 + n, 200, "/bin/sh", 1000 + n)
        ran = dataclasses.replace(t, executable="/usr/bin/true")
        values += [fork(t, 3), exec_(ran, 3, "true"), *([activity("exec", ran, 3)] if n % 2 else []), exit_(ran, 4)]
    node.feed(*values)
    assert len(node.table) == baseline
    assert len(node.agent.ledger) == 0
    assert len(node.documents()[PROCESS]) == 2000  # 1000 execs + 1000 ends


def test_ledger_cap_drops_the_oldest_debt() -> None:
    ledger = EndLedger(max_owed=2)
    for pid in (1, 2, 3):
        ledger.note_emitted(f"e{pid}", pid)
    assert ledger.dropped == 1 and not ledger.owes_end("e1") and ledger.owes_end("e3")


def test_every_process_field_of_the_seed_comes_from_the_table_with_its_ecs_type(node: Node) -> None:
    """The seed's process.*/user.*/group.* fields, produced through lifecycle values and the
    table alone (no hand-made ancestry), with ECS types: pids long, ids keyword strings,
    args arrays, interactive/same_as_process booleans, dates as strings."""
    from reference_agent.ecs.common import flatten

    from .seed_fields import PROCESS_EVENT_FIELDS

    child = node.task(210, 200, "/bin/sh", 300)
    ran = dataclasses.replace(child, executable="/usr/bin/id")
    docs = node.feed(fork(child, 3), exec_(ran, 4, "id", "-u"), activity("exec", ran, 4, args=("id", "-u")),
                     exit_(ran, 5))
    flat: dict = {}
    for doc in docs[PROCESS]:
        flat.update(flatten(doc))
    wanted = [f for f in PROCESS_EVENT_FIELDS if f.split(".")[0] in ("process", "user", "group")]
    missing = [f for f in wanted if f not in flat and not (f.startswith("process.previous.") and "process.previous" in flat)]
    assert missing == []
    for field, value in flat.items():
        leaf = field.rsplit(".", 1)[-1]
        if leaf == "pid":
            assert type(value) is int, field
        elif leaf in ("interactive", "same_as_process"):
            assert type(value) is bool, field
        elif leaf == "args":
            assert isinstance(value, list) and all(isinstance(a, str) for a in value), field
        elif field.endswith(("user.id", "group.id")) or leaf in ("entity_id", "start", "end", "executable", "name"):
            assert isinstance(value, str), field
    assert flat["process.previous"] == [{"executable": "/bin/sh", "args": ["sh", "-c", "sleep infinity"]}]


def test_an_exec_whose_image_the_kernel_could_not_read_leaves_it_unknown(node: Node) -> None:
    child = node.task(210, 200, "/bin/sh", 300)
    unread = dataclasses.replace(child, executable="")
    grandchild = node.task(211, 210, "", 301)
    docs = node.feed(fork(child, 3), exec_(unread, 4, "x"), fork(grandchild, 5), activity("fork", grandchild, 5))
    [doc] = docs[PROCESS]
    assert "executable" not in doc["process"] and "name" not in doc["process"]
    assert doc["process"]["parent"]["pid"] == 210 and doc["process"]["parent"]["args"] == ["x"]
    assert "executable" not in doc["process"]["parent"] and "name" not in doc["process"]["parent"]


def test_reconcile_writes_the_end_owed_for_a_process_whose_exit_was_lost(node: Node) -> None:
    """A full ring buffer can lose an exit: the process is gone from /proc, its end still owed."""
    child = node.task(210, 200, "/bin/sh", 300)  # never in the fake /proc: it is gone
    node.feed(fork(child, 3), activity("fork", child, 3))
    docs = node.agent.reconcile()
    assert [(d.fields["event.action"], d.fields["process.pid"]) for d in docs] == [("end", 210)]
    assert docs[0].data_stream == PROCESS and "process.end" in docs[0].fields
    assert 210 not in node.table and 200 in node.table  # still in /proc: kept
    assert node.agent.reconcile() == [] and len(node.agent.ledger) == 0


def test_exits_the_kernel_skipped_are_ended_from_proc_soon_after(node: Node, monkeypatch) -> None:
    """The kernel counts runs of the exit program it skipped (recursion guard): /proc is
    compared at once, not at the next periodic reconcile (10**9 s away here)."""
    monkeypatch.setattr(agent_module, "SKIP_CHECK_INTERVAL_S", 0.0)
    monkeypatch.setattr(agent_module, "SKIP_RECONCILE_DELAY_S", 0.0)
    child = node.task(210, 200, "/bin/sh", 300)  # never in the fake /proc: it is gone
    node.feed(fork(child, 3), activity("fork", child, 3))
    assert 210 in node.table and node.feed() == {}  # nothing skipped: nothing compared
    node.backend.kernel_counters["process"]["skipped"] = 1
    docs = node.feed()
    assert [(d["event"]["action"], d["process"]["pid"]) for d in docs[PROCESS]] == [("end", 210)]
    assert 210 not in node.table and 200 in node.table


def test_without_a_table_ends_are_still_written_once(node: Node) -> None:
    """No /proc (table disabled): relatives are omitted, D20 still holds."""
    node.agent.processes = None
    child = node.task(210, 200, "/usr/bin/true", 300)
    docs = node.feed(activity("exec", child, 3), exit_(child, 4), exit_(child, 5))
    assert [d["event"]["action"] for d in docs[PROCESS]] == ["exec", "end"]
    assert docs[PROCESS][1]["process"]["executable"] == "/usr/bin/true"
    assert "session_leader" not in docs[PROCESS][1]["process"]


def test_docker_exec_under_a_known_shim_is_not_placed_in_the_shims_session(node: Node) -> None:
    """The exec'd command's parent is containerd-shim (seeded, a host process): runc init's
    setsid() means nothing of the shim's session may be copied; without the kernel's sid
    and with /proc gone, the session leader is omitted rather than guessed."""
    shell = node.task(300, 50, "/usr/bin/dash", 400)
    child = node.task(301, 300, "/usr/bin/dash", 401)
    ran = dataclasses.replace(child, executable="/usr/bin/true")
    docs = node.feed(exec_(shell, 4, "sh", "-c", "true"), fork(child, 4), exec_(ran, 5, "true"),
                     activity("exec", ran, 5))
    proc = docs[PROCESS][0]["process"]
    assert "session_leader" not in proc and "group_leader" not in proc
    assert proc["parent"]["pid"] == 300 and proc["parent"]["args"] == ["sh", "-c", "true"]
    assert proc["entry_leader"]["pid"] == 300  # the shim is outside the container
