"""process_hooks.bpf.o in a BPF-LSM kernel (the VM): exec and fork blocked before they happen
(D21), log/alert records with their selectors and actions (D22), lifecycle records of fork,
exec and exit with the right values, host processes never matched (D15)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reference_agent.activity import ProcessActivity, ProcessLifecycle
from reference_agent.kernel.process_compiler import compile_process_section
from reference_agent.kernel.process_enforcer import ProcessEnforcer
from reference_agent.kernel.support import cgroup_id

from .process_policies import process_policy

CGROUP2_ROOT = Path("/sys/fs/cgroup")
TRUE = "/usr/bin/true"
TOUCH = "/usr/bin/touch"
PYTHON = os.path.realpath("/usr/bin/python3")


@pytest.fixture
def cgroup() -> Iterator[Path]:
    if not (CGROUP2_ROOT / "cgroup.procs").is_file():
        pytest.skip(f"needs cgroup v2 mounted at {CGROUP2_ROOT}")
    path = CGROUP2_ROOT / f"d4c-proc-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()


def in_cgroup(cgroup: Path, action: Callable[[], None]) -> tuple[int, int, int]:
    """Fork a child (from the host: that fork is not the container's), move it into `cgroup`,
    run `action` there (typically an exec). Returns (child pid, errno the action raised or 0,
    wait status). The report pipe is close-on-exec: a successful exec reports nothing."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 0
        try:
            os.close(r)
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))
            action()
        except OSError as exc:
            code = exc.errno or 255
        except BaseException:  # noqa: BLE001 - the child must never return into pytest
            code = 254
        finally:
            os.write(w, str(code).encode())
            os._exit(7)
    os.close(w)
    out = os.read(r, 16)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return pid, int(out or b"0"), status


def fork_and_wait() -> None:
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)


@pytest.fixture
def enforcer(bpf_lsm) -> Iterator[Callable[..., ProcessEnforcer]]:
    made: list[ProcessEnforcer] = []

    def make(policy, cgroup: Path | None, accounts: dict[int, str] | None = None) -> ProcessEnforcer:
        compiled = compile_process_section(policy)
        e = ProcessEnforcer(compiled)
        made.append(e)
        if cgroup is not None:
            cgid = cgroup_id(cgroup)
            if accounts is not None:
                e.set_accounts(cgid, accounts)
            e.set_container_mask(cgid, (1 << len(compiled.names)) - 1)
        return e

    yield make
    for e in made:
        e.close()


def activities(values) -> list[ProcessActivity]:
    return [v for v in values if isinstance(v, ProcessActivity)]


def lifecycle(values, kind: str | None = None) -> list[ProcessLifecycle]:
    return [v for v in values if isinstance(v, ProcessLifecycle) and (kind is None or v.kind == kind)]


BLOCK_TOUCH = process_policy(
    [{"name": "touch", "operations": ["exec"], "processExecutable": (TOUCH,)}],
    [{"match": ["touch"], "actions": ["block", "alert"]}],
)


def test_exec_blocked_before_the_program_runs(enforcer, cgroup, tmp_path):
    e = enforcer(BLOCK_TOUCH, cgroup)
    marker = tmp_path / "ran"
    pid, err, _ = in_cgroup(cgroup, lambda: os.execv(TOUCH, ["touch", str(marker)]))
    assert err == errno.EPERM
    assert not marker.exists(), "touch ran: the exec was not blocked before the new image"
    values = e.drain()
    [a] = activities(values)
    assert (a.operation, a.selectors, a.actions, a.blocked) == ("exec", ("touch",), frozenset({"block", "alert"}), True)
    assert (a.task.pid, a.task.executable, a.args) == (pid, TOUCH, ("touch", str(marker)))
    assert a.trace_point == "lsm__bprm_creds_for_exec"
    assert lifecycle(values, "exec") == [], "a refused exec changed nothing"
    [end] = lifecycle(values, "exit")
    assert (end.task.pid, end.task.executable, end.exit_code) == (pid, PYTHON, 7)


def test_exec_alert_reports_lifecycle_then_activity(enforcer, cgroup, tmp_path):
    policy = process_policy(
        [{"name": "touch", "operations": ["exec"], "processName": ("touch",)},
         {"name": "other", "operations": ["exec"], "processName": ("true",)}],
        [{"match": ["touch", "other"], "actions": ["alert"]}],
    )
    e = enforcer(policy, cgroup)
    marker = tmp_path / "ran"
    pid, err, status = in_cgroup(cgroup, lambda: os.execv(TOUCH, ["touch", str(marker)]))
    assert (err, os.waitstatus_to_exitcode(status)) == (0, 0)
    assert marker.exists()
    values = e.drain()
    kinds = [(type(v).__name__, getattr(v, "kind", getattr(v, "operation", None))) for v in values]
    assert kinds == [("ProcessLifecycle", "exec"), ("ProcessActivity", "exec"), ("ProcessLifecycle", "exit")]
    exec_, act, end = values
    assert (exec_.task.pid, exec_.task.executable, exec_.args) == (pid, TOUCH, ("touch", str(marker)))
    assert (act.selectors, act.actions, act.blocked, act.task.executable) == (("touch",), frozenset({"alert"}), False, TOUCH)
    assert act.args == ("touch", str(marker))
    assert (end.task.pid, end.task.executable, end.exit_code) == (pid, TOUCH, 0)


def test_fork_blocked_with_eperm(enforcer, cgroup):
    policy = process_policy(
        [{"name": "py-forks", "operations": ["fork"], "processName": (os.path.basename(PYTHON),)}],
        [{"match": ["py-forks"], "actions": ["block", "alert"]}],
    )
    e = enforcer(policy, cgroup)
    pid, err, _ = in_cgroup(cgroup, fork_and_wait)
    assert err == errno.EPERM
    values = e.drain()
    [a] = activities(values)
    assert (a.operation, a.selectors, a.blocked) == ("fork", ("py-forks",), True)
    assert (a.task.pid, a.task.executable) == (pid, PYTHON), "no child exists: the record is the parent"
    assert lifecycle(values, "fork") == []


def test_fork_log_describes_the_child(enforcer, cgroup):
    policy = process_policy(
        [{"name": "forks", "operations": ["fork"], "processExecutable": ("/usr/bin/*",)}],
        [{"match": ["forks"], "actions": ["log"]}],
    )
    e = enforcer(policy, cgroup)
    pid, err, _ = in_cgroup(cgroup, fork_and_wait)
    assert err == 0
    values = e.drain()
    [fork] = lifecycle(values, "fork")
    [a] = activities(values)
    assert values.index(fork) < values.index(a)
    assert (fork.task.ppid, fork.task.executable) == (pid, PYTHON)
    assert fork.task.pid != pid and fork.task.start_time_ns > 0
    assert (a.task.pid, a.task.ppid, a.selectors, a.actions) == (fork.task.pid, pid, ("forks",), frozenset({"log"}))
    exits = {v.task.pid: v.exit_code for v in lifecycle(values, "exit")}
    assert exits == {fork.task.pid: 0, pid: 7}


def test_lifecycle_of_a_shell_pipeline(enforcer, cgroup, tmp_path):
    """No policy fires: fork, exec and exit are still reported, with pids, executables, args."""
    never = process_policy([{"name": "never", "processName": ("no-such-program",)}],
                           [{"match": ["never"], "actions": ["log"]}])
    e = enforcer(never, cgroup)
    out = tmp_path / "out"
    script = f"/usr/bin/echo one two > {out}; exit 3"
    pid, err, status = in_cgroup(cgroup, lambda: os.execv("/bin/sh", ["sh", "-c", script]))
    assert (err, os.waitstatus_to_exitcode(status)) == (0, 3)
    values = e.drain()
    assert activities(values) == []
    execs = [(v.task.pid, v.task.executable, v.args) for v in lifecycle(values, "exec")]
    sh = os.path.realpath("/bin/sh")
    [fork] = lifecycle(values, "fork")
    assert fork.task.ppid == pid and fork.task.executable == sh
    assert execs == [(pid, sh, ("sh", "-c", script)), (fork.task.pid, "/usr/bin/echo", ("/usr/bin/echo", "one", "two"))]
    exits = {v.task.pid: (v.task.executable, v.exit_code) for v in lifecycle(values, "exit")}
    assert exits == {fork.task.pid: ("/usr/bin/echo", 0), pid: (sh, 3)}


def test_host_process_never_matched(enforcer, cgroup):
    everything = process_policy([{"name": "all", "operations": ["fork", "exec"]}],
                                [{"match": ["all"], "actions": ["block", "alert"]}])
    e = enforcer(everything, cgroup)
    assert subprocess.run([TRUE], check=False).returncode == 0  # fork + exec on the host (D15)
    assert e.drain() == []
    e.set_container_mask(cgroup_id(cgroup), 0)  # a container nothing applies to
    _, err, _ = in_cgroup(cgroup, lambda: os.execv(TRUE, ["true"]))
    values = e.drain()
    assert err == 0 and activities(values) == [] and [v.kind for v in values] == ["exec", "exit"]


def test_user_and_session_conditions(enforcer, cgroup, tmp_path):
    policy = process_policy(
        [{"name": "nobody-id", "operations": ["exec"], "processUserId": ("65534",)},
         {"name": "nobody-name", "operations": ["exec"], "processUserName": ("nobody",)},
         {"name": "root-name", "operations": ["exec"], "processUserName": ("root",)},
         {"name": "no-tty", "operations": ["exec"], "sessionLeaderInteractive": False},
         {"name": "tty", "operations": ["exec"], "sessionLeaderInteractive": True}],
        [{"match": ["nobody-id", "nobody-name", "root-name", "no-tty", "tty"], "actions": ["log"]}],
    )
    e = enforcer(policy, cgroup, accounts={0: "root", 65534: "nobody"})

    def as_nobody() -> None:
        os.setsid()  # no controlling terminal
        os.seteuid(65534)
        os.execv(TRUE, ["true"])

    _, err, _ = in_cgroup(cgroup, as_nobody)
    assert err == 0
    [a] = activities(e.drain())
    assert a.selectors == ("nobody-id", "nobody-name", "no-tty") and a.task.uid == 65534


def test_session_leader_executable(enforcer, cgroup, tmp_path):
    """The shell leads its session (setsid); its child's exec of true is refused because of
    who leads the session, and the shell sees the failure."""
    sh = os.path.realpath("/bin/sh")
    policy = process_policy(
        [{"name": "true-under-sh", "operations": ["exec"], "processName": ("true",),
          "sessionLeaderExecutable": (sh,)}],
        [{"match": ["true-under-sh"], "actions": ["block", "alert"]}],
    )
    e = enforcer(policy, cgroup)
    out = tmp_path / "rc"

    def shell() -> None:
        os.setsid()
        os.execv("/bin/sh", ["sh", "-c", f"{TRUE}; echo $? > {out}"])

    _, err, _ = in_cgroup(cgroup, shell)
    assert err == 0
    assert out.read_text().strip() != "0", "true ran"
    values = e.drain()
    [a] = activities(values)
    assert (a.selectors, a.blocked, a.task.executable) == (("true-under-sh",), True, TRUE)
    [sh_exec] = [v for v in lifecycle(values, "exec") if v.task.executable == sh]
    leader = sh_exec.task.pid
    assert (sh_exec.task.sid, sh_exec.task.pgid) == (leader, leader)
    assert (a.task.sid, a.task.pgid, a.task.ppid) == (leader, leader, leader), "the shell's child, in its session"
