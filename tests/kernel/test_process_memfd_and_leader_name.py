"""D32 in a BPF-LSM kernel (the VM): an exec whose program is a memfd file is the operation
execMemFd (blocked with EPERM before it runs, reported with the memfd's name as its
executable), an `exec` selector covers it, and sessionLeaderName matches the basename of the
session leader's executable."""

from __future__ import annotations

import errno
import os

from reference_agent.activity import ProcessActivity

from .process_policies import process_policy
from .test_process_enforcement import (  # noqa: F401 - the fixtures
    PYTHON,
    TOUCH,
    TRUE,
    activities,
    cgroup,
    enforcer,
    in_cgroup,
    lifecycle,
)

MEMFD_EXE = "/memfd:payload (deleted)"  # what /proc/<pid>/exe shows for it


def memfd_of(program: str) -> int:
    """A memfd named `payload` holding a copy of `program`. Not close-on-exec: an exec of
    /proc/self/fd/N opens the file after the exec has started closing such fds."""
    fd = os.memfd_create("payload", 0)
    with open(program, "rb") as src:
        data = src.read()
    while data:
        data = data[os.write(fd, data):]
    return fd


def exec_memfd_by_proc_path(program: str, argv: list[str]) -> None:
    os.execv(f"/proc/self/fd/{memfd_of(program)}", argv)


def exec_memfd_by_fd(program: str, argv: list[str]) -> None:
    os.execve(memfd_of(program), argv, dict(os.environ))  # fexecve: execveat(fd, "", AT_EMPTY_PATH)


def test_memfd_exec_blocked_before_it_runs(enforcer, cgroup, tmp_path):
    policy = process_policy([{"name": "fromMemory", "operations": ["execMemFd"]}],
                            [{"match": ["fromMemory"], "actions": ["block", "alert"]}])
    e = enforcer(policy, cgroup)
    for how in (exec_memfd_by_proc_path, exec_memfd_by_fd):
        marker = tmp_path / f"ran-{how.__name__}"
        pid, err, _ = in_cgroup(cgroup, lambda: how(TOUCH, ["touch", str(marker)]))
        assert err == errno.EPERM, how.__name__
        assert not marker.exists(), f"{how.__name__}: the memfd program ran"
        values = e.drain()
        [a] = activities(values)
        assert (a.operation, a.policy_operation, a.selectors, a.blocked) == (
            "exec", "execMemFd", ("fromMemory",), True), how.__name__
        assert (a.task.pid, a.task.executable, a.args) == (pid, MEMFD_EXE, ("touch", str(marker)))
        assert lifecycle(values, "exec") == [], "a refused exec changed nothing"


def test_memfd_selector_leaves_file_execs_alone(enforcer, cgroup, tmp_path):
    policy = process_policy([{"name": "fromMemory", "operations": ["execMemFd"]}],
                            [{"match": ["fromMemory"], "actions": ["block", "alert"]}])
    e = enforcer(policy, cgroup)
    marker = tmp_path / "ran"
    _, err, status = in_cgroup(cgroup, lambda: os.execv(TOUCH, ["touch", str(marker)]))
    assert (err, os.waitstatus_to_exitcode(status)) == (0, 0) and marker.exists()
    values = e.drain()
    assert activities(values) == []
    [exec_] = lifecycle(values, "exec")
    assert exec_.task.executable == TOUCH


def test_exec_selector_covers_memfd_exec(enforcer, cgroup, tmp_path):
    policy = process_policy(
        [{"name": "anyExec", "operations": ["exec"]},
         {"name": "memfdByName", "operations": ["exec"], "processName": (os.path.basename(MEMFD_EXE),)},
         {"name": "touchByPath", "operations": ["exec"], "processExecutable": (TOUCH,)}],
        [{"match": ["anyExec", "memfdByName", "touchByPath"], "actions": ["log"]}],
    )
    e = enforcer(policy, cgroup)
    marker = tmp_path / "ran"
    pid, err, status = in_cgroup(cgroup, lambda: exec_memfd_by_fd(TOUCH, ["touch", str(marker)]))
    assert (err, os.waitstatus_to_exitcode(status)) == (0, 0) and marker.exists()
    values = e.drain()
    [exec_] = lifecycle(values, "exec")
    [a] = activities(values)
    assert (exec_.task.pid, exec_.task.executable) == (pid, MEMFD_EXE)
    assert (a.policy_operation, a.selectors, a.actions) == ("execMemFd", ("anyExec", "memfdByName"),
                                                            frozenset({"log"}))
    [end] = lifecycle(values, "exit")
    assert (end.task.pid, end.task.executable, end.exit_code) == (pid, MEMFD_EXE, 0)


def test_session_leader_name(enforcer, cgroup):
    """The python child leads its session (setsid) and forks; the grandchild's exec of true
    has python as its session leader; an exec by the leader itself has the new image."""
    python = os.path.basename(PYTHON)
    policy = process_policy(
        [{"name": "underPython", "operations": ["exec"], "sessionLeaderName": (python,)},
         {"name": "underBash", "operations": ["exec"], "sessionLeaderName": ("bash",)},
         {"name": "leaderIsTrue", "operations": ["exec"], "sessionLeaderName": ("true",)}],
        [{"match": ["underPython", "underBash", "leaderIsTrue"], "actions": ["log"]}],
    )
    e = enforcer(policy, cgroup)

    def leader_forks_true() -> None:
        os.setsid()
        child = os.fork()
        if child == 0:
            os.execv(TRUE, ["true"])
        os.waitpid(child, 0)

    def leader_execs_true() -> None:
        os.setsid()
        os.execv(TRUE, ["true"])

    for action, selectors in ((leader_forks_true, ("underPython",)), (leader_execs_true, ("leaderIsTrue",))):
        _, err, _ = in_cgroup(cgroup, action)
        assert err == 0
        acts = [a for a in activities(e.drain()) if isinstance(a, ProcessActivity)]
        assert [(a.task.executable, a.selectors) for a in acts] == [(TRUE, selectors)], action.__name__
