"""ProcessTable.learn/knows/image/previous_image: what the agent uses for a task the table
missed (its fork predates the seed or was lost), and for process.previous / executables."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time

from reference_agent.processes import ProcessTable
from reference_agent.system import procfs

from .fakeproc import CONTAINER_CGROUP, FakeProc, task


def test_learn_a_real_process_started_after_the_seed(tmp_path) -> None:
    table = ProcessTable("agent-1")
    table.seed()
    child = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.2)
        start_ns = procfs.read_stat("/proc", child.pid).start_ns
        kernel_view = task(child.pid, os.getpid(), exe="/usr/bin/sleep", start_ticks=0, cgroup_id=0)
        kernel_view = dataclasses.replace(kernel_view, start_time_ns=start_ns + 1234)
        assert not table.knows(kernel_view)
        assert table.learn(kernel_view)
        assert table.knows(kernel_view)
        found = table.ancestry(kernel_view)
        assert found is not None and found.parent is not None and found.parent.pid == os.getpid()
        assert table.image(kernel_view).args == ("sleep", "30")  # /proc's, not a guess
        reused = dataclasses.replace(kernel_view, start_time_ns=start_ns + 10**12)
        assert not table.knows(reused) and table.ancestry(reused) is None and table.image(reused) is None
    finally:
        child.kill()
        child.wait()


def test_learn_a_process_gone_from_proc_keeps_only_the_kernels_view(table: ProcessTable, fake: FakeProc) -> None:
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    gone = task(777, 300, exe="/usr/bin/touch", start_ticks=900, cgroup_id=cg, uid=1000)
    assert table.learn(gone)
    image = table.image(gone)
    assert image.executable == "/usr/bin/touch" and image.args == ()  # args unknown: not the parent's
    facts = table.describe(777)
    assert facts.process.working_directory is None  # not copied from the parent either
    assert facts.parent.pid == 300  # the kernel told the parent; the table knows it
    assert facts.session_leader is None  # no sid from the kernel, none in /proc: omitted


def test_kernel_session_ids_win_over_the_parents_copy(table: ProcessTable, fake: FakeProc) -> None:
    """docker exec: runc init calls setsid() and then execs; the kernel's sid/pgid place it."""
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    child = dataclasses.replace(task(310, 300, exe="/bin/sh", start_ticks=950, cgroup_id=cg), sid=310, pgid=310)
    table.on_fork(child)
    assert table.describe(310).session_leader.pid == 310
    assert table.describe(310).session_leader.same_as_process is True
    table.on_exec(310, "/usr/bin/dash", ["sh", "-c", "x"], task=dataclasses.replace(child, executable="/usr/bin/dash"))
    assert table.describe(310).session_leader.executable == "/usr/bin/dash"


def test_previous_image_after_exec(table: ProcessTable, fake: FakeProc) -> None:
    cg = fake.cgroup_id(CONTAINER_CGROUP)
    child = task(320, 300, exe="/bin/sh", start_ticks=960, cgroup_id=cg)
    table.on_fork(child)
    assert table.previous_image(child) is None
    assert table.image(child).args == ("sh",)  # a forked child runs its parent's program
    table.on_exec(320, "/usr/bin/true", ["true"], task=dataclasses.replace(child, executable="/usr/bin/true"))
    assert table.previous_image(child).executable == "/bin/sh"
    assert table.previous_image(child).args == ("sh",)
    assert table.image(child).executable == "/usr/bin/true"

