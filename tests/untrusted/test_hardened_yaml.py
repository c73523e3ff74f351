"""d4c_yaml, and every surface that reads untrusted YAML or JSON through it: a bad file is one
located line and an exit code, never a traceback, a hang or a silently ignored tag."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import d4c_yaml
from reference_agent.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]

OK_POLICY = """\
file:
  selectors:
    - {name: a, operation: [createExecutable]}
  responses:
    - {match: [a], actions: [log]}
"""


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The classic "billion laughs": width**levels nodes from a few hundred bytes."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nfile: *a{levels - 1}\n"


def d4c(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "d4c", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ("a: !!python/object/apply:os.system\n  b: 1\n", 1, 4, "tag !!python/object/apply:os.system is not allowed"),
        ("a: !!python/name:os.system [x]\n", 1, 4, "is not allowed"),
        ("a: [!local x]\n", 1, 5, "tag !local is not allowed"),
        ("a: !!binary aGk=\n", 1, 4, "tag !!binary is not allowed"),
        ("a: [!!int log]\n", 1, 5, "cannot read 'log' as int"),
        ("a: 2001-13-45\n", 1, 4, "as timestamp"),
        ("a: " + "9" * 5000 + "\n", 1, 4, "too large (at most 64 bits)"),
        ("a: 0x" + "f" * 17 + "\n", 1, 4, "too large"),
        ("a: &x [b, *x]\n", 1, 11, "recursive alias *x"),
        ("[" * 1000 + "]" * 1000, 1, 65, "nesting deeper than 64"),
        ("a: 1\nb: \x00\n", 2, 4, "unreadable character '\\x00'"),
        ("1: one\n", 1, 1, "mapping keys must be strings"),
        ("~: nothing\n", 1, 1, "mapping keys must be strings"),
        ("a: [unclosed\n", 2, 1, "expected ',' or ']'"),
    ],
)
def test_refused_input_is_one_located_error(text, line, column, words):
    with pytest.raises(d4c_yaml.YamlError) as info:
        d4c_yaml.load(text)
    assert (info.value.line, info.value.column) == (line, column), info.value
    assert words in info.value.message and "\n" not in str(info.value)


def test_an_alias_bomb_is_refused_at_compose_time_without_expanding_it():
    started = time.process_time()
    with pytest.raises(d4c_yaml.YamlError, match="aliases expand to more than 10000 nodes"):
        d4c_yaml.compose(alias_bomb())
    # A behaviour, not a benchmark: an expanding reader would take minutes and gigabytes here.
    assert time.process_time() - started < 5


def test_ordinary_yaml_still_loads():
    data = d4c_yaml.load("a: [1, -2, 0x10, 1.5, true, null, '1']\nd: 2024-01-01\nx: &x {k: v}\ny: {<<: *x, l: w}\n")
    assert data["a"] == [1, -2, 16, 1.5, True, None, "1"]
    assert str(data["d"]) == "2024-01-01"  # still a YAML 1.1 date: the reader decides
    assert data["y"] == {"k": "v", "l": "w"}
    assert d4c_yaml.load(alias_bomb(levels=3, width=9))["file"][0][0] == ["lol"] * 9  # 729 nodes: fine


def test_error_paths_name_the_node():
    with pytest.raises(d4c_yaml.YamlError) as info:
        d4c_yaml.compose("file:\n  selectors:\n    - name: !x a\n")
    assert info.value.path == ("file", "selectors", 0, "name")


def test_invalid_utf8_is_located():
    with pytest.raises(d4c_yaml.YamlError) as info:
        d4c_yaml.decode(b"a: 1\nb: \xff\n")
    assert (info.value.line, info.value.column) == (2, 4)


# --- d4c policy validate / evaluate ----------------------------------------------------------

def test_validate_reports_a_mapping_tag_instead_of_ignoring_it(tmp_path):
    (tmp_path / "p.yaml").write_text(OK_POLICY.replace("file:\n", "file: !!python/object/apply:os.system\n"))
    done = d4c("policy", "validate", "p.yaml", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stdout.startswith("p.yaml:1:7: file: not valid YAML: tag !!python/object/apply:os.system")


def test_validate_answers_an_alias_bomb_in_one_line(tmp_path):
    (tmp_path / "p.yaml").write_text(alias_bomb())
    done = d4c("policy", "validate", "p.yaml", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout.count("\n") == 1 and "alias bomb" in done.stdout


def test_a_lone_surrogate_escape_is_one_located_error(tmp_path):
    """libyaml refuses a `\\ud800` escape (no character has that code): one located line."""
    (tmp_path / "p.yaml").write_text(OK_POLICY + '"\\ud800": 1\n')
    done = d4c("policy", "validate", "p.yaml", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stdout.count("\n") == 1 and "p.yaml:" in done.stdout and "escape" in done.stdout


def test_a_lone_surrogate_in_the_text_is_an_error_at_its_position():
    """Text decoded with surrogateescape (invalid UTF-8 bytes) reaches the loader as a lone
    surrogate, which libyaml cannot take: an error at that character, not UnicodeEncodeError."""
    with pytest.raises(d4c_yaml.YamlError) as info:
        d4c_yaml.compose("a: b\nc: x\udcff\n")
    assert (info.value.line, info.value.column) == (2, 5)


def test_validate_piped_into_head_keeps_its_exit_status(tmp_path):
    """`d4c policy validate bad.yaml | head -1`: the reader leaves early; the status stays 1."""
    many = "file:\n  selectors:\n" + "".join(f"    - {{name: s{i}, operation: [bogus]}}\n" for i in range(5000))
    (tmp_path / "bad.yaml").write_text(many)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        ["bash", "-c", f"set -o pipefail; '{sys.executable}' -m d4c policy validate bad.yaml | head -1"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.count("\n") == 1 and done.stderr == ""


@pytest.mark.parametrize(
    "operation, where, words",
    [
        ('{"kind": "file",\n "file": {"path": ' + "1" * 5000 + "}}", "<stdin>:2:19:", "integer of 5000 digits"),
        ('{"kind": "file", "x": NaN}', "<stdin>:1:23:", "NaN is not a JSON number"),
        ("[" * 100_000, "<stdin>:", "nesting too deep"),
        # Valid JSON, no valid operation: located at the field the error names, not unlocated.
        ('{"kind": "file",\n "operation": "createFile", "file": {"mount": "nfs"}}', "<stdin>:2:37:", "file.path: required"),
        ('{"kind": "file",\n "operation": "createFile", "file": {"path": "/x", "mount": 1}}', "<stdin>:2:61:", "file.mount: must be a string"),
    ],
)
def test_evaluate_refuses_bad_operation_json_with_exit_2(tmp_path, operation, where, words):
    (tmp_path / "p.yaml").write_text(OK_POLICY)
    done = d4c("policy", "evaluate", "p.yaml", "--operation", "-", stdin=operation, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"d4c policy evaluate: {where}") and words in done.stderr
    assert done.stderr.count("\n") == 1


def test_evaluate_locates_invalid_utf8_in_the_operation_file(tmp_path):
    (tmp_path / "p.yaml").write_text(OK_POLICY)
    (tmp_path / "op.json").write_bytes(b'{"kind": "file",\n "operation": "cr\xffeateFile"}')
    done = d4c("policy", "evaluate", "p.yaml", "--operation", "op.json", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "d4c policy evaluate: op.json:2:18: not UTF-8 text (byte 34)\n"


# --- d4c scenario lint -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, where, words",
    [
        (b"id: x\ntitle: !!int abc\n", ":2:8:", "cannot read 'abc' as int"),
        (b"id: x\ntitle: !!timestamp yesterday\n", ":2:8:", "tag !!timestamp is not allowed"),
        (b"id: x\n\x00\n", ":2:1:", "unreadable character"),
        (b"id: &a [*a]\n", ":1:9:", "recursive alias"),
        (b"id: " + b"[" * 500 + b"]" * 500 + b"\n", ":1:", "nesting deeper than 64"),
        (b"id: x\ntitle: \xc3\x28\n", ":2:8:", "not UTF-8"),
        (b"id: x\nspec: 2001-12-14t21:59:43.10-05:00\n", ":2:1:", "spec: datetime"),
    ],
)
def test_lint_reports_bad_yaml_in_one_located_line(tmp_path, text, where, words):
    (tmp_path / "s.yaml").write_bytes(text)
    done = d4c("scenario", "lint", "s.yaml", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert any(line.startswith("s.yaml" + where) and words in line for line in done.stdout.splitlines()), done.stdout


# --- the agent's config --------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [
        ("kubernetes:\n  api: in-cluster\n  request_timeout: .nan\n", "a.yaml:3:20: kubernetes.request_timeout: must be a positive"),
        ("kubernetes:\n  api: in-cluster\n  cache_ttl: .inf\n", "a.yaml:3:14: kubernetes.cache_ttl: must be a positive"),
        ("cluster_id: " + "7" * 5000 + "\n", "a.yaml:1:13: cluster_id: integer '7777"),
        ("cluster_name: 2024-01-01\n", "a.yaml:1:15: cluster_name: must be a string"),
        ("stdout: !!bool maybe\n", "a.yaml:1:9: stdout: cannot read 'maybe' as bool"),
        ("namespace: !!python/object:os.system x\n", "a.yaml:1:12: yaml: tag !!python/object:os.system"),
        ("namespace: &n [*n]\n", "a.yaml:1:16: yaml: recursive alias"),
        ('namespace: "\\ud800"\n', "a.yaml:1:15: yaml: while parsing a quoted scalar; found invalid Unicode"),
        ("elasticsearch_url: http://[x\n", "a.yaml:1:20: elasticsearch_url: not a URL: Invalid IPv6 URL"),
    ],
)
def test_config_refuses_what_is_no_setting(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(text, "a.yaml")
    assert str(info.value).startswith(expected), str(info.value)
