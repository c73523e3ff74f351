"""Seeding from a fake /proc: relatives, names, entry leader, ECS keys."""

from __future__ import annotations

from reference_agent.processes import ProcessTable, iso_timestamp
from reference_agent.system.procfs import NS_PER_TICK, parse_stat

from .conftest import make_table
from .fakeproc import BTIME, CID, FakeProc


def test_kernel_threads_are_skipped_and_processes_are_live(table: ProcessTable) -> None:
    assert table.live_pids() == [1, 50, 60, 200, 210, 220, 300]
    assert 2 not in table


def test_parent_session_group_and_entry_leader(table: ProcessTable) -> None:
    facts = table.describe(220)
    assert facts is not None
    assert facts.parent.pid == 210
    assert facts.session_leader.pid == 200  # sid 200
    assert facts.group_leader.pid == 210  # pgid 210
    assert facts.entry_leader.pid == 200  # first process of the container: parent 50 is outside
    assert facts.container_id == CID
    assert facts.process.executable == "/usr/bin/python3"
    assert facts.process.name == "python3"
    assert facts.process.args == ("python3", "-c", "pass")
    assert facts.process.working_directory == "/app"
    assert facts.process.interactive is True
    assert facts.parent.args == ("sleep", "100")


def test_same_as_process_and_entry_meta(table: ProcessTable) -> None:
    facts = table.describe(200)
    # bash is its own session, group and entry leader
    for relative in (facts.session_leader, facts.group_leader, facts.entry_leader):
        assert relative.same_as_process is True
        assert relative.pid == 200
    assert facts.parent.same_as_process is False
    assert facts.entry_leader.entry_meta_type == "container"
    assert facts.session_leader.entry_meta_type == "container"  # it is the entry leader
    assert facts.group_leader.entry_meta_type is None

    facts = table.describe(210)
    assert facts.group_leader.same_as_process is True
    assert facts.session_leader.same_as_process is False
    assert facts.entry_leader.same_as_process is False


def test_docker_exec_process_is_its_own_entry_leader(table: ProcessTable) -> None:
    facts = table.describe(300)
    assert facts.entry_leader.pid == 300
    assert facts.entry_leader.same_as_process is True
    assert facts.parent.pid == 50  # containerd-shim, on the host


def test_host_processes_have_no_entry_leader(table: ProcessTable) -> None:
    facts = table.describe(60)
    assert facts.container_id is None
    assert facts.entry_leader is None
    assert facts.parent.pid == 1


def test_names_come_from_the_containers_own_files(table: ProcessTable) -> None:
    facts = table.describe(210)
    # uid 1000 is "app" in the container and "hostuser" on the host: the container wins
    assert (facts.process.user_id, facts.process.user_name) == (1000, "app")
    assert (facts.process.group_id, facts.process.group_name) == (1000, "appgrp")
    assert facts.session_leader.user_name == "root"
    # the host process gets the host's names
    process = table.describe(60).process
    assert (process.user_name, process.group_name) == ("hostuser", "hostgroup")


def test_unknown_names_are_omitted_not_faked(table: ProcessTable) -> None:
    process = table.describe(220).process
    assert process.user_id == 4242 and process.group_id == 4242
    assert process.user_name is None and process.group_name is None


def test_container_without_readable_root_gets_no_host_names(fake: FakeProc) -> None:
    (fake.proc / "210" / "root").unlink()  # as if the container's root vanished
    table = make_table(fake)
    table.seed()
    process = table.describe(210).process
    assert process.user_id == 1000
    assert process.user_name is None  # not the host's "hostuser"


def test_symlinked_passwd_in_a_container_is_not_followed(fake: FakeProc) -> None:
    evil = fake.make_root("evil", None, None)
    (evil / "etc" / "passwd").symlink_to(fake.host / "etc" / "passwd")
    fake.add(400, 50, exe="/bin/sh", args=["sh"], start_ticks=500, uid=1000,
             cgroup=f"/kubepods/pod1/cri-containerd-{'b' * 64}.scope", root=evil)
    table = make_table(fake)
    table.seed()
    facts = table.describe(400)
    assert facts.container_id == "b" * 64
    assert facts.process.user_name is None


def test_start_and_described_values(table: ProcessTable) -> None:
    facts = table.describe(210)
    start_ns = BTIME * 1_000_000_000 + 300 * NS_PER_TICK
    assert facts.process.start_ns == start_ns and facts.process.start == iso_timestamp(start_ns)
    assert facts.parent.start_ns == BTIME * 1_000_000_000 + 200 * NS_PER_TICK
    assert facts.process.args == ("sleep", "100")
    assert facts.process.pid == 210
    assert facts.parent.pid == 200
    assert facts.parent.working_directory == "/app"
    assert facts.parent.name == "bash"
    assert facts.process.interactive is True
    assert facts.previous == () and facts.end_ns is None
    assert facts.process.same_as_process is None


def test_iso_timestamp_format() -> None:
    assert iso_timestamp(1679328239_520_123_456) == "2023-03-20T16:03:59.520Z"


def test_parse_stat_with_parentheses_in_comm() -> None:
    stat = parse_stat("60 (a) b (c) S 1 61 62 34816 -1 4194304 " + "0 " * 12 + "777 0 0\n")
    assert (stat.pid, stat.ppid, stat.pgid, stat.sid, stat.tty_nr) == (60, 1, 61, 62, 34816)
    assert stat.start_ns == 777 * NS_PER_TICK
    assert not stat.kernel_thread


def test_dead_session_leader_at_seed_is_omitted(fake: FakeProc) -> None:
    fake.remove(200)  # the session leader is gone before the agent starts; 210 is reparented
    fake.add(210, 1, exe="/usr/bin/sleep", args=["sleep", "100"], sid=200, pgid=210, start_ticks=300,
             cgroup="/system.slice/docker-" + CID + ".scope")
    table = make_table(fake)
    table.seed()
    facts = table.describe(210)
    assert facts.session_leader is None
    assert facts.parent.pid == 1
    assert facts.group_leader.pid == 210


def test_entry_leader_when_children_have_lower_pids_and_the_same_start(fake: FakeProc) -> None:
    # pid wrap: container init 85 (parent: the shim), its child 84, grandchild 83, all started
    # in the same tick, so seed() meets the grandchild before its ancestors are linked
    common = {"cgroup": "/system.slice/docker-" + "c" * 64 + ".scope", "root": fake.base / "container"}
    fake.add(85, 50, exe="/bin/sh", args=["sh"], start_ticks=350, **common)
    fake.add(84, 85, exe="/bin/sh", args=["sh"], sid=85, start_ticks=350, **common)
    fake.add(83, 84, exe="/bin/cat", args=["cat"], sid=85, pgid=84, start_ticks=350, **common)
    table = make_table(fake)
    table.seed()
    assert table.describe(83).entry_leader.pid == 85
    assert table.describe(83).group_leader.pid == 84
    assert table.describe(84).entry_leader.pid == 85
