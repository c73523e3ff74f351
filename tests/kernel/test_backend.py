"""BpfBackend (the agent's KernelBackend): policies swap atomically and keep their names; a
policy the kernel cannot represent is refused and the loaded one keeps enforcing."""

from __future__ import annotations

import errno
import os

import pytest

from reference_agent.activity import FileActivity
from reference_agent.kernel.backend import BpfBackend
from reference_agent.kernel.compiler import CompileError
from reference_agent.kernel.preload import Preload
from reference_agent.kernel.support import cgroup_id

from .policies import file_policy
from .test_file_enforcement import _in_sandbox, sandbox  # noqa: F401 - the fixture

BLOCK_ETC = file_policy([{"name": "etc", "targetFilePath": ("/etc/**",)}],
                        [{"match": ["etc"], "actions": ["block", "alert"]}])
LOG_ETC = file_policy([{"name": "first", "targetFilePath": ("/usr/**",)},
                       {"name": "etc-log", "targetFilePath": ("/etc/*",)}],
                      [{"match": ["etc-log"], "actions": ["log"]}])
UNREPRESENTABLE = file_policy([{"name": "deep", "targetFilePath": ("/a/**/b/**/c/**/d/**/e",)}],
                              [{"match": ["deep"], "actions": ["log"]}])


def _files(values) -> list[FileActivity]:
    """The file activities of a poll (the sandbox child's exit is a process lifecycle value)."""
    return [v for v in values if isinstance(v, FileActivity)]


def _write(path: str):
    return lambda: os.close(os.open(path, os.O_WRONLY))


@pytest.mark.parametrize("preloaded", [False, True], ids=["loads-itself", "preloaded"])
def test_policy_switch_refusal_and_names(bpf_lsm, sandbox, preloaded):  # noqa: F811
    # preloaded: `d4c agent run`'s way, the objects loaded in the background before the policy
    cgroup, root = sandbox
    cgid = cgroup_id(cgroup)
    backend = BpfBackend(preload=Preload() if preloaded else None)
    try:
        backend.apply_policy(BLOCK_ETC, {cgid: frozenset({"etc"})})
        assert _in_sandbox(cgroup, root, _write("/etc/passwd"))[1] == errno.EPERM
        [a] = _files(backend.poll(0.1))
        assert (a.selectors, a.blocked) == (("etc",), True)

        backend.apply_policy(LOG_ETC, {cgid: frozenset({"first", "etc-log"})})
        assert _in_sandbox(cgroup, root, _write("/etc/passwd"))[1] == 0
        [a] = _files(backend.poll(0.1))
        assert (a.selectors, a.actions, a.blocked) == (("etc-log",), frozenset({"log"}), False)

        with pytest.raises(CompileError):
            backend.apply_policy(UNREPRESENTABLE, {cgid: frozenset({"deep"})})
        assert _in_sandbox(cgroup, root, _write("/etc/passwd"))[1] == 0
        assert [a.selectors for a in _files(backend.poll(0.1))] == [("etc-log",)], "the loaded policy stays"

        backend.apply_policy(BLOCK_ETC, {})  # the container went away: nothing applies (D15)
        assert _in_sandbox(cgroup, root, _write("/etc/passwd"))[1] == 0
        assert _files(backend.poll(0.05)) == []
    finally:
        backend.close()


A_ETC = file_policy([{"name": "a-etc", "targetFilePath": ("/etc/*",)}], [{"match": ["a-etc"], "actions": ["log"]}])
B_ETC = file_policy([{"name": "b-pad", "targetFilePath": ("/nothing",)}, {"name": "b-etc", "targetFilePath": ("/etc/**",)}],
                    [{"match": ["b-etc"], "actions": ["alert"]}])


def test_poll_in_one_thread_while_policies_switch_in_another(bpf_lsm, sandbox):  # noqa: F811
    """agent.KernelBackend's threading contract: every record is delivered once and named by
    the policy that decided it, while apply_policy switches slots concurrently."""
    import threading

    cgroup, root = sandbox
    cgid = cgroup_id(cgroup)
    backend = BpfBackend()
    got: list[tuple[str, ...]] = []
    stop = threading.Event()
    try:
        backend.apply_policy(A_ETC, {cgid: frozenset({"a-etc"})})

        def poller() -> None:
            while not stop.is_set():
                got.extend(a.selectors for a in _files(backend.poll(0.02)))

        thread = threading.Thread(target=poller)
        thread.start()
        expected = []
        for i in range(20):
            policy, names = (A_ETC, {"a-etc"}) if i % 2 == 0 else (B_ETC, {"b-pad", "b-etc"})
            backend.apply_policy(policy, {cgid: frozenset(names)})
            assert _in_sandbox(cgroup, root, _write("/etc/passwd"))[1] == 0
            expected.append(("a-etc",) if i % 2 == 0 else ("b-etc",))
        stop.set()
        thread.join()
        got.extend(a.selectors for a in _files(backend.poll(0)))
        assert got == expected
    finally:
        stop.set()
        backend.close()
