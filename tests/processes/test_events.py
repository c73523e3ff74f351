"""Keeping the table by fork/exec/exit events; entity ids; D20 ledger; retention and cap."""

from __future__ import annotations

import pytest

from reference_agent.processes import EndLedger, OwedEnd, ProcessImage, ProcessTable, entity_id, parse_entity_id
from reference_agent.system.procfs import NS_PER_TICK
from reference_agent.processes.table import MAX_PREVIOUS

from .conftest import make_table
from .fakeproc import BTIME, CID, CONTAINER_CGROUP, HOST_CGROUP, FakeProc, task

NS = 1_000_000_000


def test_entity_id_format_and_round_trip() -> None:
    eid = entity_id("7829f26d-c2d1-4eaf", 1915535, 1679328239_520_000_000)
    assert parse_entity_id(eid) == ("7829f26d-c2d1-4eaf", 1915535, 1679328239_520_000_000)
    import base64

    assert base64.b64decode(eid).decode() == "7829f26d-c2d1-4eaf-1915535-1679328239520000000"
    with pytest.raises(ValueError):
        parse_entity_id("not base64!")


def test_entity_id_is_the_same_from_proc_and_from_the_kernel(fake: FakeProc) -> None:
    seeded = make_table(fake)
    seeded.seed()
    events = make_table(fake)  # never seeded: learns 210 from a fork event, ns-precision start
    events.on_fork(task(210, 200, exe="/usr/bin/sleep", start_ticks=300, cgroup_id=fake.cgroup_id(CONTAINER_CGROUP)))
    assert seeded.entity_id(210) == events.entity_id(210)
    assert parse_entity_id(seeded.entity_id(210)) == ("agent-7", 210, BTIME * NS + 300 * NS_PER_TICK)


def test_entity_id_is_stable_for_life_and_differs_on_pid_reuse(table: ProcessTable, fake: FakeProc) -> None:
    before = table.entity_id(210)
    table.on_exec(210, "/usr/bin/env", ["env"])
    assert table.entity_id(210) == before  # exec keeps the process
    table.on_exit(210)
    table.on_fork(task(210, 200, exe="/bin/bash", start_ticks=900, cgroup_id=fake.cgroup_id(CONTAINER_CGROUP)))
    assert table.entity_id(210) != before
    assert make_table(fake, boot_time_ns=0).entity_id(1) is None  # unseeded table knows nothing


def test_fork_inherits_from_parent(table: ProcessTable, fake: FakeProc) -> None:
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    eid = table.on_fork(task(230, 210, exe="/usr/bin/sleep", start_ticks=500, cgroup_id=cg, uid=1000, gid=1000, tty=True))
    facts = table.describe(230)
    assert facts.entity_id == eid
    assert facts.process.args == ("sleep", "100")  # fork copies the image and its args
    assert facts.process.working_directory == "/app"
    assert facts.parent.pid == 210
    assert facts.session_leader.pid == 200
    assert facts.group_leader.pid == 210
    assert facts.entry_leader.pid == 200
    assert facts.process.user_name == "app"  # reused from the parent: same uid, same container
    assert facts.process.start_ns == BTIME * NS + 500 * NS_PER_TICK  # rounded to the tick


def test_fork_with_unknown_parent_uses_proc_if_the_child_is_there(table: ProcessTable, fake: FakeProc) -> None:
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    fake.add(777, 9999, exe="/bin/true", args=["true", "x"], sid=777, pgid=777, start_ticks=600,
             cgroup=CONTAINER_CGROUP, root=fake.base / "container", cwd="/tmp")
    table.on_fork(task(777, 9999, exe="/bin/true", start_ticks=600, cgroup_id=cg))
    facts = table.describe(777)
    assert facts.parent is None
    assert facts.process.args == ("true", "x") and facts.process.working_directory == "/tmp"
    assert facts.session_leader.pid == 777
    assert facts.entry_leader.pid == 777


def test_exec_keeps_previous_image(table: ProcessTable) -> None:
    previous = table.on_exec(210, "/usr/bin/ls", ["ls", "--color=auto"])
    assert previous == ProcessImage("/usr/bin/sleep", ("sleep", "100"))
    facts = table.describe(210)
    assert facts.process.executable == "/usr/bin/ls" and facts.process.name == "ls"
    assert facts.previous == (ProcessImage("/usr/bin/sleep", ("sleep", "100")),)
    # children and leaders see the new image too
    assert table.describe(220).parent.executable == "/usr/bin/ls"


def test_exec_chain_is_bounded_oldest_first(table: ProcessTable) -> None:
    for i in range(MAX_PREVIOUS + 3):
        table.on_exec(210, f"/bin/p{i}", [f"p{i}"])
    previous = table.describe(210).previous
    assert len(previous) == MAX_PREVIOUS
    assert previous[-1] == ProcessImage(f"/bin/p{MAX_PREVIOUS + 1}", (f"p{MAX_PREVIOUS + 1}",))
    assert previous[0] == ProcessImage("/bin/p2", ("p2",))


def test_exec_after_setsid_updates_session_from_proc(table: ProcessTable, fake: FakeProc) -> None:
    fake.set_session(220, sid=220, pgid=220, tty_nr=0)  # setsid(), then exec
    table.on_exec(220, "/usr/sbin/daemon", ["daemon"])
    facts = table.describe(220)
    assert facts.session_leader.pid == 220 and facts.session_leader.same_as_process
    assert facts.group_leader.pid == 220
    assert facts.process.interactive is False


def test_exec_of_setuid_image_renames_user(table: ProcessTable, fake: FakeProc) -> None:
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    t = task(210, 200, exe="/usr/bin/su", start_ticks=300, cgroup_id=cg, uid=0, gid=0, tty=True)
    table.on_exec(210, "/usr/bin/su", ["su"], task=t)
    assert table.describe(210).process.user_name == "root"


def test_runc_style_start_first_process_enters_the_container_at_exec(table: ProcessTable, fake: FakeProc) -> None:
    host_cg, cont_cg = fake.cgroup_id(HOST_CGROUP), fake.cgroup_id(CONTAINER_CGROUP)
    # runc init is forked by the shim on the host side, moves into the container's cgroup, execs
    table.on_fork(task(500, 50, exe="/usr/bin/runc", start_ticks=700, cgroup_id=host_cg))
    assert table.describe(500).entry_leader is None
    table.on_exec(500, "/docker-entrypoint.sh", ["/docker-entrypoint.sh", "nginx"],
                  task=task(500, 50, exe="/docker-entrypoint.sh", start_ticks=700, cgroup_id=cont_cg))
    facts = table.describe(500)
    assert facts.container_id == CID
    assert facts.entry_leader.pid == 500
    assert facts.entry_leader.entry_meta_type == "container"
    # its children have it as entry leader
    table.on_fork(task(501, 500, exe="/docker-entrypoint.sh", start_ticks=710, cgroup_id=cont_cg))
    assert table.describe(501).entry_leader.pid == 500


def test_exec_of_an_unknown_pid_is_learnt_from_the_task_or_counted(table: ProcessTable, fake: FakeProc) -> None:
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    assert table.on_exec(888, "/bin/x", ["x"], task=task(888, 210, exe="/bin/x", start_ticks=800, cgroup_id=cg)) is None
    assert table.describe(888).parent.pid == 210
    assert table.on_exec(889, "/bin/y", ["y"]) is None  # no task, not in /proc
    assert 889 not in table
    assert table.stats().unknown_exec == 1


def test_exit_returns_last_facts_with_end(table: ProcessTable) -> None:
    facts = table.on_exit(220, end_ns=1000 * NS)
    assert facts is not None and facts.process.pid == 220
    assert facts.end_ns == BTIME * NS + 1000 * NS
    assert 220 not in table
    assert table.describe(220) is None
    assert table.on_exit(220) is None  # a second exit is ignored


def test_exit_with_other_start_ends_the_stale_record(table: ProcessTable) -> None:
    assert table.on_exit(220, start_ns=999 * NS_PER_TICK) is None
    assert 220 not in table
    assert table.stats().missed_exits == 1


def test_fork_onto_a_live_pid_ends_the_stale_process(table: ProcessTable, fake: FakeProc) -> None:
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    table.on_fork(task(220, 210, exe="/usr/bin/sleep", start_ticks=5000, cgroup_id=cg))
    assert table.stats().missed_exits == 1
    assert table.describe(220).process.start_ns == BTIME * NS + 5000 * NS_PER_TICK


def test_dead_relatives_are_kept_while_referred_to_then_dropped(table: ProcessTable, fake: FakeProc) -> None:
    n = len(table)
    table.on_exit(210)  # parent and group leader of 220
    assert len(table) == n  # kept: 220 still refers to it
    assert table.stats().retained_exited == 1
    facts = table.describe(220)
    assert facts.parent.pid == 210 and facts.group_leader.pid == 210
    # a new member of the dead leader's group still finds it through its parent
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    table.on_fork(task(221, 220, exe="/usr/bin/python3", start_ticks=900, cgroup_id=cg))
    assert table.describe(221).group_leader.pid == 210
    table.on_exit(221)
    table.on_exit(220)  # last process referring to 210
    assert table.stats().retained_exited == 0
    assert len(table) == n - 2  # 210 and 220 gone (221 came and went)


def test_session_leader_exit_is_retained_for_its_session(table: ProcessTable) -> None:
    table.on_exit(200)
    assert table.describe(220).session_leader.pid == 200
    assert table.describe(210).entry_leader.pid == 200
    table.on_exit(220)
    assert table.stats().retained_exited == 1  # still 210's parent, session and entry leader
    table.on_exit(210)
    assert table.stats().retained_exited == 0


def test_hard_cap_evicts_dead_first_then_oldest_live(fake: FakeProc) -> None:
    table = make_table(fake, max_records=4)
    table.seed()  # 7 processes into 4 slots: the three first seen are evicted
    stats = table.stats()
    assert len(table) == 4 and stats.evicted_live == 3
    assert table.live_pids() == [200, 210, 220, 300]  # seeded in pid order: 1, 50, 60 went first
    table = make_table(fake, max_records=7)
    table.seed()
    table.on_exit(210)  # retained: 220 refers to it
    assert len(table) == 7
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    table.on_fork(task(600, 300, exe="/bin/sh", start_ticks=900, cgroup_id=cg))
    stats = table.stats()
    assert len(table) == 7
    assert (stats.evicted_exited, stats.evicted_live) == (1, 0)
    assert table.describe(220).parent is None  # evicted relatives are unknown, not faked


def test_reconcile_finds_lost_exits(table: ProcessTable, fake: FakeProc) -> None:
    fake.remove(300)
    ended = table.reconcile()
    assert [f.process.pid for f in ended] == [300]
    assert 300 not in table and table.stats().missed_exits == 1


def test_reconcile_ends_a_zombie_whose_exit_was_lost(table: ProcessTable, fake: FakeProc) -> None:
    # Killed children of a container init that never reaps stay in /proc as zombies: exited.
    fake.zombie(300)
    assert [f.process.pid for f in table.reconcile()] == [300]
    assert 300 not in table and table.reconcile() == []


def test_injected_entity_id_formula(fake: FakeProc) -> None:
    table = make_table(fake, entity_ids=lambda pid, start: f"{pid}@{start}")
    table.seed()
    assert table.describe(210).parent.entity_id == f"200@{200 * NS_PER_TICK}"


def test_ancestry_for_the_ecs_builders(table: ProcessTable, fake: FakeProc) -> None:
    ancestry = table.ancestry(220)
    assert ancestry.parent.pid == 210 and ancestry.parent.start_time_ns == 300 * NS_PER_TICK
    assert ancestry.session_leader.pid == 200 and ancestry.session_leader.tty is True
    assert ancestry.entry_leader.pid == 200 and ancestry.group_leader.pid == 210
    assert ancestry.working_directory == "/app"
    assert table.ancestry(12345) is None
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    kernel_view = task(220, 210, exe="/usr/bin/python3", start_ticks=310, cgroup_id=cg)
    assert table.ancestry(kernel_view) == ancestry
    reused = task(220, 210, exe="/usr/bin/python3", start_ticks=999, cgroup_id=cg)
    assert table.ancestry(reused) is None


# ------------------------------------------------------------------------ D20


def test_d20_end_exactly_for_processes_with_a_fork_or_exec_event(table: ProcessTable, fake: FakeProc) -> None:
    """Drive the table and the ledger as the pipeline does; count the end events emitted."""
    ledger = EndLedger()
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    ends: list[int] = []

    def exited(pid: int) -> None:
        facts = table.on_exit(pid)
        if facts is not None and ledger.settle_end(facts.entity_id):
            ends.append(pid)

    table.on_fork(task(700, 200, exe="/bin/bash", start_ticks=900, cgroup_id=cg, tty=True))
    ledger.note_emitted(table.entity_id(700), 700)  # fork event written
    table.on_exec(700, "/usr/bin/id", ["id"])
    ledger.note_emitted(table.entity_id(700), 700)  # exec event written too: still one end
    table.on_fork(task(701, 200, exe="/bin/bash", start_ticks=901, cgroup_id=cg))  # no event (no match)
    ledger.note_emitted(table.entity_id(210), 210)  # exec event of a seeded process
    assert ledger.owes_end(table.entity_id(700)) and not ledger.owes_end(table.entity_id(701))
    for pid in (700, 701, 210, 220):
        exited(pid)
    exited(700)  # a duplicate exit does not emit twice
    assert ends == [700, 210]
    assert len(ledger) == 0


def test_d20_pid_reuse_does_not_inherit_a_debt(table: ProcessTable, fake: FakeProc) -> None:
    ledger = EndLedger()
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    ledger.note_emitted(table.entity_id(220), 220)
    old = table.entity_id(220)
    table.on_fork(task(220, 210, exe="/bin/x", start_ticks=9000, cgroup_id=cg))  # exit was lost
    assert not ledger.settle_end(table.entity_id(220))
    assert ledger.settle_end(old)  # still owed to the old process (reconcile's caller emits it)
    assert not ledger.settle_end(old)


def test_d20_ledger_is_bounded() -> None:
    ledger = EndLedger(max_owed=2)
    for i in range(1, 5):
        ledger.note_emitted(f"e{i}", i)
    assert len(ledger) == 2 and ledger.dropped == 2
    assert ledger.owed_pids() == [3, 4]
    ledger.forget("e3")
    assert ledger.owed_pids() == [4]


def test_d20_owed_end_carries_the_events_selectors_and_actions() -> None:
    ledger = EndLedger()
    ledger.note_emitted("e1", 10, ("forks",), frozenset({"log"}))
    ledger.note_emitted("e1", 10, ("execs", "forks"), frozenset({"alert"}))
    owed = ledger.settle("e1")
    assert owed == OwedEnd(10, ("forks", "execs"), frozenset({"log", "alert"}))
    assert ledger.settle("e1") is None
