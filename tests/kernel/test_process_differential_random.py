"""The randomized differential test, for process operations. Random process
policies (processExecutable globs, processName, processUserId / processUserName,
sessionLeaderInteractive, sessionLeaderExecutable, sessionLeaderName, image conditions,
operations fork / exec / execMemFd, match/exclude, all action sets) are loaded into the kernel
one after the other (slots switch, programs stay attached); random exec, memfd exec and fork
attempts run in a container process (its own session, a chosen effective uid); for each, the kernel's errno, matched selectors and actions
must equal what the reference evaluator (reference_agent.policy.evaluate) says. Seeded: a
failure names its seed, policy and attempt."""

from __future__ import annotations

import errno
import os
import random
from dataclasses import dataclass

import pytest

from reference_agent.activity import ProcessActivity
from reference_agent.kernel.process_compiler import compile_process_section
from reference_agent.kernel.process_enforcer import ProcessEnforcer
from reference_agent.kernel.support import cgroup_id
from reference_agent.policy.matcher import evaluate
from reference_agent.policy.operation import Container, Operation, Process, image_parts

from .process_policies import process_policy
from .test_process_memfd_and_leader_name import MEMFD_EXE, exec_memfd_by_fd
from .test_process_enforcement import cgroup, in_cgroup  # noqa: F401 - the fixture

SEED = int(os.environ.get("D4C_DIFF_SEED", "20261130"))
POLICIES = int(os.environ.get("D4C_DIFF_POLICIES", "10"))
ATTEMPTS = int(os.environ.get("D4C_DIFF_OPS", "10"))

PYTHON = os.path.realpath("/usr/bin/python3")
# (path execve is given, the path the kernel resolves it to, argv): short-lived programs only.
PROGRAMS = (
    ("/usr/bin/true", "/usr/bin/true", ("true",)),
    ("/bin/echo", os.path.realpath("/bin/echo"), ("echo", "x")),
    ("/usr/bin/test", "/usr/bin/test", ("test", "1")),
    ("/usr/bin/env", "/usr/bin/env", ("env", "-0")),
)
ACCOUNTS = {0: "root", 1: "daemon", 65534: "nobody"}
EXECUTABLES = ("/usr/bin/*", "/usr/bin/true", "/usr/**", "/usr/**/echo", "/bin/*", "/usr/bin/pyth*",
               "/**/test", "/usr/*/env", "/*", "/memfd:*")
NAMES = ("true", "echo", "test", "env", os.path.basename(PYTHON), "sh", "tru", os.path.basename(MEMFD_EXE))
USER_IDS = ("0", "1", "65534", "00", "42")
USER_NAMES = ("root", "daemon", "nobody", "ghost")
LEADERS = (PYTHON, "/usr/bin/python3*", "/usr/**", "/usr/bin/true", "/usr/bin/e*", "/bin/**", "/memfd:*")
OPERATIONS = ("fork", "exec", "execMemFd")
ACTION_SETS = (("log",), ("alert",), ("block", "alert"), ("log", "alert"), ("block", "alert", "log"))
CONTAINER_IMAGE = "alpine:3.19"


def random_policy(rng: random.Random):
    selectors = []
    for i in range(rng.randint(2, 6)):
        s: dict = {"name": f"p{i}"}
        if rng.random() < 0.5:
            s["operations"] = rng.sample(OPERATIONS, rng.randint(1, 2))
        conditions = {
            "processExecutable": lambda: tuple(rng.sample(EXECUTABLES, rng.randint(1, 2))),
            "processName": lambda: tuple(rng.sample(NAMES, rng.randint(1, 2))),
            "processUserId": lambda: tuple(rng.sample(USER_IDS, rng.randint(1, 2))),
            "processUserName": lambda: tuple(rng.sample(USER_NAMES, rng.randint(1, 2))),
            "sessionLeaderInteractive": lambda: rng.random() < 0.3,
            "sessionLeaderExecutable": lambda: tuple(rng.sample(LEADERS, rng.randint(1, 2))),
            "sessionLeaderName": lambda: tuple(rng.sample(NAMES, rng.randint(1, 2))),
            "containerImageName": lambda: (rng.choice(["alpine", "redis", "alp*"]),),
        }
        for name in rng.sample(sorted(conditions), rng.randint(0 if "operations" in s else 1, 2)):
            s[name] = conditions[name]()
        selectors.append(s)
    names = [s["name"] for s in selectors]
    responses = []
    for _ in range(rng.randint(1, 4)):
        r = {"match": rng.sample(names, rng.randint(1, 2)), "actions": list(rng.choice(ACTION_SETS))}
        if rng.random() < 0.3:
            r["exclude"] = rng.sample(names, 1)
        responses.append(r)
    return process_policy(selectors, responses)


@dataclass(frozen=True)
class Attempt:
    operation: str  # fork | exec | execMemFd
    uid: int
    program: tuple[str, str, tuple[str, ...]]

    def run(self) -> None:
        """In the container child: its own session (no terminal), the effective uid, then try."""
        os.setsid()
        os.seteuid(self.uid)
        if self.operation == "exec":
            os.execv(self.program[0], list(self.program[2]))
        if self.operation == "execMemFd":
            exec_memfd_by_fd(self.program[1], list(self.program[2]))
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)


def random_attempt(rng: random.Random) -> Attempt:
    return Attempt(rng.choice(OPERATIONS), rng.choice(sorted(ACCOUNTS)), rng.choice(PROGRAMS))


def expected(policy, container: Container, attempt: Attempt) -> tuple[int, tuple[str, ...], frozenset[str]]:
    # exec: the process after the exec, which leads its own session; fork: the child runs the
    # forking python, whose session it shares (the forking python leads it).
    exe = {"exec": attempt.program[1], "execMemFd": MEMFD_EXE}.get(attempt.operation, PYTHON)
    process = Process(executable=exe, name=os.path.basename(exe), user_id=str(attempt.uid),
                      user_name=ACCOUNTS[attempt.uid], session_leader_executable=exe,
                      session_leader_name=os.path.basename(exe),
                      session_leader_interactive=False)
    verdict = evaluate(policy, Operation(kind="process", operation=attempt.operation, container=container,
                                         process=process))
    actions = frozenset(verdict.actions)
    return (errno.EPERM if "block" in actions else 0), verdict.matched_selectors, actions


@pytest.mark.parametrize("seed", [SEED])
def test_kernel_decisions_equal_the_reference_evaluator(bpf_lsm, cgroup, seed):  # noqa: F811
    rng = random.Random(seed)
    name, tag, full = image_parts(CONTAINER_IMAGE)
    container = Container(image=CONTAINER_IMAGE, name=name, tag=tag, full=full)
    cgid = cgroup_id(cgroup)
    enforcer: ProcessEnforcer | None = None
    compared = fired = blocked = 0
    try:
        for p in range(POLICIES):
            policy = random_policy(rng)
            compiled = compile_process_section(policy)
            if enforcer is None:
                enforcer = ProcessEnforcer(compiled)
                enforcer.set_accounts(cgid, ACCOUNTS)
                enforcer.add_container(cgid, container)
            else:
                enforcer.set_policy(compiled)
            for i in range(ATTEMPTS):
                attempt = random_attempt(rng)
                want_errno, want_selectors, want_actions = expected(policy, container, attempt)
                _, got_errno, _ = in_cgroup(cgroup, attempt.run)
                acts = [v for v in enforcer.drain() if isinstance(v, ProcessActivity)]
                got = [(a.policy_operation, a.selectors, a.actions, a.blocked) for a in acts]
                want = [(attempt.operation, want_selectors, want_actions, want_errno != 0)] if want_actions else []
                where = f"seed {seed}, policy {p} ({policy}), attempt {i} ({attempt})"
                assert got_errno == want_errno, where
                assert got == want, where
                compared += 1
                fired += bool(want_actions)
                blocked += want_errno != 0
    finally:
        if enforcer is not None:
            enforcer.close()
    # The draw must exercise both outcomes, else the comparison proves little.
    assert fired and blocked and compared - fired, (compared, fired, blocked)
