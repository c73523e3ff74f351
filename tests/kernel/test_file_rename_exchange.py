"""renameat2(a, b, RENAME_EXCHANGE) in the kernel (VM). Both names survive and each now names
the other's file, so neither is a deleteFile; by D17 ("rename onto an existing file") each
name is modified: modifyExecutable when the file that was there had an execute bit, else
modifyFile (a name that held no regular file gets a creation by the arriving file's mode). By
D18 each side is its own event with `event.action: rename`, and the exchange is blocked if
either side is (bpf/README.md, "RENAME_EXCHANGE")."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

import pytest

from reference_agent.kernel.compiler import compile_file_section
from reference_agent.kernel.file_enforcer import FileEnforcer
from reference_agent.kernel.support import cgroup_id
from reference_agent.policy.matcher import evaluate
from reference_agent.policy.operation import Container, FileTarget, Operation

from .policies import file_policy
from .test_file_enforcement import _in_sandbox, sandbox  # noqa: F401  (fixture)

AT_FDCWD = -100
RENAME_EXCHANGE = 1 << 1
_libc = ctypes.CDLL(None, use_errno=True)

POLICY = file_policy(
    [
        {"name": "passwd-content", "operations": ["modifyFile"], "targetFilePath": ("/etc/passwd",)},
        {"name": "bin-changes", "operations": ["modifyExecutable", "createExecutable"],
         "targetFilePath": ("/usr/bin/*",)},
        {"name": "deletes", "operations": ["deleteFile"]},
        {"name": "tmp-any", "targetFilePath": ("/tmp/**",)},
    ],
    [
        {"match": ["passwd-content"], "actions": ["block", "alert"]},
        {"match": ["bin-changes"], "actions": ["alert"]},
        {"match": ["deletes"], "actions": ["block"]},
        {"match": ["tmp-any"], "actions": ["log"]},
    ],
)
CONTAINER = Container(image="nginx:1.25", name="nginx", tag="1.25", full="docker.io/library/nginx:1.25")


def _exchange(a: str, b: str) -> Callable[[], None]:
    def run() -> None:
        if _libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), RENAME_EXCHANGE) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return run


# (a, b, the operations: (operation, path))
CASES = (
    # /etc/passwd gets other content: a modification of /etc/passwd, blocked; before the fix
    # this was "deleteFile /etc/passwd" + "modifyFile /tmp/x" and went through when the
    # policy protected only /etc/passwd's content.
    ("/etc/passwd", "/tmp/x", (("modifyFile", "/etc/passwd"), ("modifyFile", "/tmp/x"))),
    ("/tmp/x", "/etc/passwd", (("modifyFile", "/tmp/x"), ("modifyFile", "/etc/passwd"))),
    # an executable's name now holds a plain file: modifyExecutable there, by the old file's mode
    ("/tmp/x", "/usr/bin/exe", (("modifyFile", "/tmp/x"), ("modifyExecutable", "/usr/bin/exe"))),
    # a symlink's name gets a regular file: a creation there (the arriving file's mode)
    ("/tmp/x", "/usr/bin/lnk2", (("modifyFile", "/tmp/x"), ("createFile", "/usr/bin/lnk2"))),
)


@pytest.mark.parametrize(("a", "b", "operations"), CASES, ids=[f"{a}<->{b}" for a, b, _ in CASES])
def test_rename_exchange_is_two_modifications(bpf_lsm, sandbox, a, b, operations):  # noqa: F811
    cgroup, root = sandbox
    (root / "tmp/x").write_text("tmp\n")
    before = {p: (root / p.lstrip("/")).read_bytes() for p in (a, b) if not (root / p.lstrip("/")).is_symlink()}
    verdicts = [((op, path), evaluate(POLICY, Operation(kind="file", operation=op, file=FileTarget(path, "root"),
                                                         container=CONTAINER)))
                for op, path in operations]
    blocked = any("block" in v.actions for _, v in verdicts)
    want = [(op, path, "rename", v.matched_selectors, frozenset(v.actions), blocked)
            for (op, path), v in verdicts if v.actions]
    with FileEnforcer(compile_file_section(POLICY)) as enforcer:
        enforcer.add_container(cgroup_id(cgroup), CONTAINER)
        _pid, err = _in_sandbox(cgroup, root, _exchange(a, b))
        got = [(x.operation, x.path, x.event_action, x.selectors, x.actions, x.blocked) for x in enforcer.drain()]
    assert (err, got) == ((errno.EPERM if blocked else 0), want)
    if blocked:  # nothing moved
        assert {p: (root / p.lstrip("/")).read_bytes() for p in before} == before


def test_exchange_cannot_bypass_a_content_block(bpf_lsm, sandbox):  # noqa: F811
    """Only /etc/passwd's content is protected (no deleteFile selector): exchanging it with
    another file must be refused, not pass as "delete /etc/passwd" that nothing matches."""
    cgroup, root = sandbox
    (root / "tmp/x").write_text("attacker:x:0:0::/:/bin/sh\n")
    policy = file_policy([{"name": "passwd-content", "operations": ["modifyFile"], "targetFilePath": ("/etc/passwd",)}],
                         [{"match": ["passwd-content"], "actions": ["block"]}])
    with FileEnforcer(compile_file_section(policy)) as enforcer:
        enforcer.add_container(cgroup_id(cgroup), CONTAINER)
        _pid, err = _in_sandbox(cgroup, root, _exchange("/etc/passwd", "/tmp/x"))
        got = [(x.operation, x.path, x.blocked) for x in enforcer.drain()]
    assert (err, got) == (errno.EPERM, [("modifyFile", "/etc/passwd", True)])
    assert (root / "etc/passwd").read_text() == "x\n"
