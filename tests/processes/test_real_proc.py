"""Seed from this host's real /proc and check the test process and its parent.

Expected values come from independent sources (os.*, sys.orig_argv, pwd, /dev/tty), not from
the /proc files the table itself reads.
"""

from __future__ import annotations

import grp
import os
import pwd
import sys
import time

from reference_agent.processes import ProcessTable, parse_entity_id


def _has_controlling_tty() -> bool:
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True


def test_the_test_process_and_its_parent() -> None:
    table = ProcessTable("real-agent")
    assert table.seed() > 1
    me = table.describe(os.getpid())
    assert me is not None
    proc = me.process
    assert proc.pid == os.getpid()
    assert proc.args == tuple(sys.orig_argv)
    assert os.path.samefile(proc.executable, sys.executable)
    assert proc.name == os.path.basename(proc.executable)
    assert proc.working_directory == os.getcwd()
    assert (proc.user_id, proc.group_id) == (os.geteuid(), os.getegid())
    if me.container_id is None:  # a host process: the host's names
        assert proc.user_name == pwd.getpwuid(os.geteuid()).pw_name
        assert proc.group_name == grp.getgrgid(os.getegid()).gr_name
        assert me.entry_leader is None
    assert proc.interactive == _has_controlling_tty()
    # started before now, and after boot
    assert table.boot_time_ns < proc.start_ns <= time.time_ns()
    agent, pid, start = parse_entity_id(proc.entity_id)
    assert (agent, pid, start) == ("real-agent", os.getpid(), proc.start_ns)

    assert me.parent is not None and me.parent.pid == os.getppid()
    assert me.parent.start_ns <= proc.start_ns
    assert me.parent.same_as_process is False
    assert table.parent_pid(os.getpid()) == os.getppid()

    sid, pgid = os.getsid(0), os.getpgid(0)
    if sid in table:
        assert me.session_leader is not None and me.session_leader.pid == sid
        assert me.session_leader.same_as_process == (sid == os.getpid())
    if pgid in table:
        assert me.group_leader is not None and me.group_leader.pid == pgid

    assert me.process.pid == os.getpid()
    assert me.parent.pid == os.getppid()
    assert me.process.user_id == os.geteuid()


def test_a_child_seen_by_a_second_seed_and_its_exit(tmp_path) -> None:
    import subprocess

    table = ProcessTable("real-agent")
    table.seed()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path)
    try:
        table.seed()  # learns only the new process
        facts = table.describe(child.pid)
        assert facts is not None and facts.parent.pid == os.getpid()
        assert facts.process.working_directory == str(tmp_path)
        assert facts.process.args[-1] == "import time; time.sleep(30)"
    finally:
        child.kill()
        child.wait()
    ended = table.reconcile()  # its exit event was "lost": reconcile notices
    assert child.pid in [f.process.pid for f in ended]
    assert child.pid not in table
