from __future__ import annotations

from pathlib import Path

import pytest

from reference_agent.processes import ProcessTable

from .fakeproc import CONTAINER_CGROUP, HOST_CGROUP, FakeProc

CONTAINER_PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n"
CONTAINER_GROUP = "root:x:0:\nappgrp:x:1000:\n"
TTY = 34816  # /dev/pts/0


@pytest.fixture
def fake(tmp_path: Path) -> FakeProc:
    """A node: init, a kernel thread, an sshd, and one container started by containerd-shim.

    pid  ppid sid  pgid  what                                   cgroup
    1    0    1    1     /sbin/init                             /init.scope
    2    0    0    0     kthreadd (kernel thread)               /
    50   1    50   50    containerd-shim                        containerd.service
    60   1    60   60    sshd, uid 1000, comm "a) b (c"         ssh.service
    200  50   200  200   bash, container init, tty, uid 0       docker-<id>.scope
    210  200  200  210   sleep 100, uid 1000 (app in container) docker-<id>.scope
    220  210  200  210   python3, uid 4242 (named nowhere)      docker-<id>.scope
    300  50   300  300   sh from `docker exec`                  docker-<id>.scope
    """
    fp = FakeProc(tmp_path)
    croot = fp.make_root("container", CONTAINER_PASSWD, CONTAINER_GROUP)
    fp.add(1, 0, exe="/sbin/init", args=["/sbin/init"], start_ticks=1, cgroup="/init.scope")
    fp.add(2, 0, exe="", args=[], sid=0, pgid=0, start_ticks=1, kthread=True, comm="kthreadd")
    fp.add(50, 1, exe="/usr/bin/containerd-shim-runc-v2", args=["containerd-shim-runc-v2", "-id", "x"],
           start_ticks=150, cgroup=HOST_CGROUP)
    fp.add(60, 1, exe="/usr/sbin/sshd", args=["sshd: hostuser"], start_ticks=160, uid=1000, gid=1000,
           cgroup="/system.slice/ssh.service", comm="a) b (c")
    common = {"cgroup": CONTAINER_CGROUP, "root": croot, "cwd": "/app"}
    fp.add(200, 50, exe="/bin/bash", args=["bash"], start_ticks=200, tty_nr=TTY, **common)
    fp.add(210, 200, exe="/usr/bin/sleep", args=["sleep", "100"], sid=200, pgid=210, start_ticks=300,
           tty_nr=TTY, uid=1000, gid=1000, **common)
    fp.add(220, 210, exe="/usr/bin/python3", args=["python3", "-c", "pass"], sid=200, pgid=210,
           start_ticks=310, tty_nr=TTY, uid=4242, gid=4242, **common)
    fp.add(300, 50, exe="/bin/sh", args=["sh"], start_ticks=400, **common)
    return fp


def make_table(fp: FakeProc, **kwargs) -> ProcessTable:
    return ProcessTable("agent-7", str(fp.proc), cgroup_root=str(fp.cgroup), host_root=str(fp.host), **kwargs)


@pytest.fixture
def table(fake: FakeProc) -> ProcessTable:
    t = make_table(fake)
    assert t.seed() == 7  # every process but the kernel thread
    return t
