"""The process compiler on any host: what becomes which map value, and the representations
the kernel relies on (processName as `**/name`, processUserId as decimal strings)."""

from __future__ import annotations

import pytest

from reference_agent.kernel import abi
from reference_agent.kernel.compiler import CompileError, glob_match
from reference_agent.kernel.process_compiler import compile_process_section
from reference_agent.kernel.records import exit_status, split_args
from reference_agent.policy.operation import Container

from .process_policies import process_policy

SETS = abi.PatternSet


def _tokens(entry: abi.PathPattern) -> bytes:
    return bytes(entry.tokens[: entry.len])


def test_conditions_become_masks_and_pattern_sets():
    policy = process_policy(
        [{"name": "a", "operations": ["exec"], "processExecutable": ("/usr/bin/*",), "processUserId": ("0", "00")},
         {"name": "b", "processName": ("bash", "a/b"), "sessionLeaderInteractive": True},
         {"name": "c", "operations": ["fork"], "sessionLeaderExecutable": ("/bin/**/sh",),
          "processUserName": ("nobody",), "containerImageName": ("nginx",)}],
        [{"match": ["a", "b"], "exclude": ["c"], "actions": ["block", "alert"]}],
    )
    c = compile_process_section(policy)
    p = c.policy
    assert list(p.op_selectors) == [0b110, 0b011, 0b011]  # fork: b, c; exec and execMemFd: a, b
    assert list(p.set_selectors) == [0b001, 0b010, 0b100, 0]
    assert (p.user_id_selectors, p.user_name_selectors, p.interactive_true, p.interactive_false) == (1, 4, 2, 0)
    assert dict(c.user_ids) == {0: 1}, '"00" is never a uid\'s decimal string'
    assert c.user_name_masks({65534: "nobody", 0: "root"}) == {65534: 4}
    assert [_tokens(e) for e in c.patterns[SETS.D4C_SET_NAME]] == [b"\x02/bash"], "a name with / matches nothing"
    assert len(c.patterns[SETS.D4C_SET_LEADER]) == 2  # `/**/` expands into two patterns
    assert list(p.n_patterns) == [1, 1, 2, 0] and p.n_responses == 1
    assert (c.responses[0].match, c.responses[0].exclude) == (0b011, 0b100)
    nginx = Container(image="nginx", name="nginx", tag="latest", full="docker.io/library/nginx:latest")
    alpine = Container(image="alpine", name="alpine", tag="latest", full="docker.io/library/alpine:latest")
    assert (c.container_mask(nginx), c.container_mask(alpine), c.container_mask(None)) == (0b111, 0b011, 0)


def test_memfd_operation_and_leader_name():
    """D32: execMemFd has its own bit, which exec selectors hold too; sessionLeaderName is a
    basename pattern on the leader's executable, in its own set (ANDed with the others)."""
    policy = process_policy(
        [{"name": "m", "operations": ["execMemFd"]},
         {"name": "e", "operations": ["exec"], "sessionLeaderName": ("bash", "a/b")},
         {"name": "l", "sessionLeaderName": ("dash",), "sessionLeaderExecutable": ("/usr/bin/*",)}],
        [{"match": ["m", "e", "l"], "actions": ["log"]}],
    )
    c = compile_process_section(policy)
    assert list(c.policy.op_selectors) == [0b100, 0b110, 0b111]  # fork: l; exec: e, l; execMemFd: all
    assert c.policy.set_selectors[SETS.D4C_SET_LEADER_NAME] == 0b110
    assert c.policy.set_selectors[SETS.D4C_SET_LEADER] == 0b100
    names = {_tokens(e): e.selectors for e in c.patterns[SETS.D4C_SET_LEADER_NAME]}
    assert names == {b"\x02/bash": 0b010, b"\x02/dash": 0b100}, "a name with / matches nothing"


@pytest.mark.parametrize(("path", "matches"), [
    ("/usr/bin/bash", True), ("/bash", True), ("/usr/bin/xbash", False), ("/usr/bin/bash/x", False),
    ("/usr/bin/bashx", False),
])
def test_process_name_pattern_is_the_basename(path, matches):
    c = compile_process_section(process_policy([{"name": "n", "processName": ("bash",)}],
                                               [{"match": ["n"], "actions": ["log"]}]))
    [entry] = c.patterns[SETS.D4C_SET_NAME]
    assert glob_match(_tokens(entry), path.encode()) is matches


def test_unrepresentable_policies_are_refused():
    deep = process_policy([{"name": "d", "processExecutable": ("/a/**/b/**/c/**/d/**/e",)}],
                          [{"match": ["d"], "actions": ["log"]}])
    with pytest.raises(CompileError, match="selector d"):
        compile_process_section(deep)


def test_record_helpers():
    assert split_args(b"ls\0-l\0") == ("ls", "-l")
    assert split_args(b"ls\0cut-with") == ("ls", "cut-with")
    assert split_args(b"") == ()
    assert (exit_status(3 << 8), exit_status(9), exit_status(0)) == (3, 137, 0)
