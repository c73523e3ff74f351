"""D11 path patterns and D12 string patterns: the spec's examples, and a brute-force cross-check
against a direct, recursive reading of the rules."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_agent.policy import path_pattern_matches, string_pattern_matches

PATH_EXAMPLES = [
    # seed: `/usr/bin/echo` matches the echo binary and only it
    ("/usr/bin/echo", "/usr/bin/echo", True),
    ("/usr/bin/echo", "/usr/bin/echo2", False),
    ("/usr/bin/echo", "/usr/bin/echo/x", False),
    ("/usr/bin/echo", "/usr/bin", False),
    # `/usr/local/**`: everything below /usr/local at any depth, not /usr/local itself
    ("/usr/local/**", "/usr/local/bin/something", True),
    ("/usr/local/**", "/usr/local/x", True),
    ("/usr/local/**", "/usr/local/a/b/c/d", True),
    ("/usr/local/**", "/usr/local", False),
    ("/usr/local/**", "/usr/localx/y", False),
    ("/usr/local/**", "/usr/lib/x", False),
    # `/usr/bin/*`: direct children only
    ("/usr/bin/*", "/usr/bin/ls", True),
    ("/usr/bin/*", "/usr/bin/.hidden", True),
    ("/usr/bin/*", "/usr/bin/sub/x", False),
    ("/usr/bin/*", "/usr/bin", False),
    ("/usr/bin/*", "/usr/binx", False),
    # `/usr/sbin*`: /usr/sbin, /usr/sbin2, ... but not /usr/sbin/x
    ("/usr/sbin*", "/usr/sbin", True),
    ("/usr/sbin*", "/usr/sbin2", True),
    ("/usr/sbin*", "/usr/sbin.old", True),
    ("/usr/sbin*", "/usr/sbin/x", False),
    # `/**/` also matches a single `/`
    ("/var/**/secrets/*", "/var/secrets/x", True),
    ("/var/**/secrets/*", "/var/run/secrets/x", True),
    ("/var/**/secrets/*", "/var/a/b/c/secrets/x", True),
    ("/var/**/secrets/*", "/var/secrets/x/y", False),
    ("/var/**/secrets/*", "/varsecrets/x", False),
    ("/var/**/secrets/*", "/var/xsecrets/x", False),
    ("/a/**/**/b", "/a/b", True),
    ("/a/**/**/b", "/a/x/y/b", True),
    ("/**/passwd", "/passwd", True),
    ("/**/passwd", "/etc/passwd", True),
    ("/**/passwd", "/etc/passwd.bak", False),
    # `**` inside a component crosses `/` too
    ("/usr/lib**", "/usr/lib", True),
    ("/usr/lib**", "/usr/lib64/x/y.so", True),
    ("/usr/**.so", "/usr/lib/x/libc.so", True),
    ("/usr/**.so", "/usr/lib/x/libc.so.6", False),
    ("/**", "/etc/passwd", True),
    ("/*", "/etc", True),
    ("/*", "/etc/passwd", False),
    ("/*/*", "/etc/passwd", True),
    # nothing else is special; case-sensitive; whole path
    ("/tmp/a?b", "/tmp/a?b", True),
    ("/tmp/a?b", "/tmp/axb", False),
    ("/tmp/[ab]", "/tmp/[ab]", True),
    ("/tmp/[ab]", "/tmp/a", False),
    ("/tmp/{a,b}", "/tmp/{a,b}", True),
    ("/tmp/{a,b}", "/tmp/a", False),
    ("/tmp/a.b", "/tmp/axb", False),
    ("/tmp/a+(b)|c$", "/tmp/a+(b)|c$", True),
    ("/tmp/a\\b", "/tmp/a\\b", True),
    ("/tmp/a\\*", "/tmp/a\\xyz", True),
    ("/Usr/bin/*", "/usr/bin/ls", False),
    ("/usr/bin/LS", "/usr/bin/ls", False),
    ("/etc", "/etc/passwd", False),
    ("/tmp/*", "/tmp/new\nline", True),
    ("/tmp/**", "/tmp/a\n/b", True),
]


@pytest.mark.parametrize("pattern,path,expected", PATH_EXAMPLES)
def test_path_pattern_examples(pattern: str, path: str, expected: bool) -> None:
    assert path_pattern_matches(pattern, path) is expected


STRING_EXAMPLES = [
    ("elastic-a*", "elastic-agent", True),  # the seed's example
    ("elastic-a*", "elastic-agent-complete", True),
    ("elastic-a*", "elastic", False),
    ("elastic-a*", "Elastic-agent", False),  # case-sensitive
    ("nginx", "nginx", True),
    ("nginx", "nginx2", False),
    ("*", "", True),
    ("*", "any/thing:with/slashes", True),  # `*` crosses `/` in strings (D12)
    ("docker.io/library/*", "docker.io/library/nginx:latest", True),
    ("docker.io/*/nginx:*", "docker.io/library/nginx:1.25", True),
    ("nginx-pod-*", "nginx-pod-", True),
    ("*-pod-*", "web-pod-1", True),
    ("a.c", "abc", False),
    ("a?c", "abc", False),
    ("a?c", "a?c", True),
    ("[a]", "a", False),
    ("prod-**", "prod-x", True),
]


@pytest.mark.parametrize("pattern,value,expected", STRING_EXAMPLES)
def test_string_pattern_examples(pattern: str, value: str, expected: bool) -> None:
    assert string_pattern_matches(pattern, value) is expected


# --- brute force: a direct reading of D11/D12, compared on generated patterns and paths ----------


@cache
def _d11(pattern: str, path: str) -> bool:
    if not pattern:
        return path == ""
    if pattern.startswith("/**/") and _d11(pattern[3:], path):
        return True  # "a `/**/` inside a pattern also matches a single `/`"
    if pattern.startswith("**"):
        return any(_d11(pattern[2:], path[i:]) for i in range(len(path) + 1))
    if pattern[0] == "*":
        return any(_d11(pattern[1:], path[i:]) for i in range(len(path) + 1) if "/" not in path[:i])
    return bool(path) and path[0] == pattern[0] and _d11(pattern[1:], path[1:])


@cache
def _d12(pattern: str, value: str) -> bool:
    if not pattern:
        return value == ""
    if pattern[0] == "*":
        return any(_d12(pattern[1:], value[i:]) for i in range(len(value) + 1))
    return bool(value) and value[0] == pattern[0] and _d12(pattern[1:], value[1:])


patterns = st.text(alphabet="/ab*.?", max_size=10).map(lambda s: "/" + s).filter(lambda s: "***" not in s)
paths = st.text(alphabet="/ab.?", max_size=10).map(lambda s: "/" + s)


@settings(max_examples=1500, deadline=None)
@given(patterns, paths)
def test_path_patterns_agree_with_the_definition(pattern: str, path: str) -> None:
    assert path_pattern_matches(pattern, path) is _d11(pattern, path)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="ab*/.", max_size=8), st.text(alphabet="ab/.", max_size=8))
def test_string_patterns_agree_with_the_definition(pattern: str, value: str) -> None:
    assert string_pattern_matches(pattern, value) is _d12(pattern, value)
