"""The policy → map compiler (host): pattern tokens + the kernel's matching algorithm agree
with the reference evaluator's patterns, and masks/responses encode the policy."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reference_agent.kernel import abi
from reference_agent.kernel.compiler import (
    CompileError,
    compile_file_section,
    glob_match,
    pattern_tokens,
)
from reference_agent.policy.operation import Container, Orchestrator, image_parts
from reference_agent.policy.patterns import path_pattern_matches

from .policies import DIFFERENTIAL, file_policy

patterns = st.text(alphabet="ab/*", max_size=10).map(lambda s: "/" + s)
paths = st.text(alphabet="ab/", max_size=12).map(lambda s: "/" + s)


@settings(max_examples=3000, deadline=None)
@given(patterns, paths)
def test_kernel_glob_agrees_with_reference_patterns(pattern, path):
    kernel = any(glob_match(t, path.encode()) for t in pattern_tokens(pattern))
    assert kernel == path_pattern_matches(pattern, path)


def test_known_pattern_cases():
    cases = [("/usr/bin/*", "/usr/bin/ls", True), ("/usr/bin/*", "/usr/bin/x/ls", False),
             ("/usr/local/**", "/usr/local", False), ("/usr/local/**", "/usr/local/a/b", True),
             ("/usr/sbin*", "/usr/sbin2", True), ("/usr/sbin*", "/usr/sbin/x", False),
             ("/var/**/secrets/*", "/var/secrets/x", True), ("/var/**/secrets/*", "/var/run/secrets/x", True),
             ("/tmp/a?b[1]", "/tmp/a?b[1]", True), ("/tmp/a?b[1]", "/tmp/axb1", False)]
    for pattern, path, expected in cases:
        assert any(glob_match(t, path.encode()) for t in pattern_tokens(pattern)) is expected, (pattern, path)


def _container(image: str) -> Container:
    name, tag, full = image_parts(image)
    return Container(image=image, name=name, tag=tag, full=full)


def test_masks_and_responses_encode_the_policy():
    c = compile_file_section(DIFFERENTIAL)
    bit = {n: 1 << i for i, n in enumerate(c.names)}
    create_file = abi.FileOp.D4C_OP_CREATE_FILE.bit_length() - 1
    delete_file = abi.FileOp.D4C_OP_DELETE_FILE.bit_length() - 1
    assert c.policy.op_selectors[create_file] & bit["etc-writes"]
    assert not c.policy.op_selectors[delete_file] & bit["etc-writes"]
    assert c.policy.op_selectors[delete_file] & bit["deletes"] and c.policy.op_selectors[delete_file] & bit["bin-direct"]
    assert c.policy.ignore_volume_mounts == bit["root-only"]
    assert c.policy.ignore_volume_files == bit["not-file-mounts"]
    assert not c.policy.path_selectors & (bit["deletes"] | bit["new-executables"])
    # /var/**/secrets/* expands into two kernel patterns; /data/** and /etc/hosts are shared.
    assert c.policy.n_patterns == len(c.patterns) == 8
    r0 = c.responses[0]
    assert (r0.match, r0.exclude) == (bit["etc-writes"], bit["etc-tmp"])
    assert r0.actions == abi.Action.D4C_ACTION_BLOCK | abi.Action.D4C_ACTION_ALERT


def test_container_mask_uses_static_conditions_only():
    c = compile_file_section(DIFFERENTIAL)
    nginx = c.selector_names(c.container_mask(_container("nginx:1.25")))
    redis = c.selector_names(c.container_mask(_container("redis")))
    assert "redis-etc" not in nginx and "nginx-sbin" in nginx and "etc-writes" in nginx
    assert "redis-etc" in redis and "nginx-sbin" not in redis
    assert c.container_mask(None) == 0  # D15: host processes
    k8s = file_policy([{"name": "ns", "orchestratorNamespace": ("prod",), "targetFilePath": ("/x",)}],
                      [{"match": ["ns"], "actions": ["log"]}])
    ck = compile_file_section(k8s)
    assert ck.container_mask(_container("nginx")) == 0  # D15: not managed by Kubernetes
    assert ck.container_mask(_container("nginx"), Orchestrator(type="kubernetes", namespace="prod")) == 1


def test_unrepresentable_patterns_are_errors():
    too_many = file_policy([{"name": "s", "targetFilePath": ("/a/**/b/**/c/**/d/**/e",)}],
                           [{"match": ["s"], "actions": ["log"]}])
    try:
        compile_file_section(too_many)
    except CompileError as exc:
        assert "selector s" in str(exc)
    else:
        raise AssertionError("4 '/**/' must not compile")
