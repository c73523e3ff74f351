"""`d4c policy validate|evaluate`: output shapes and exit codes of cli-contract.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from d4c.cli import main

from .cases import ERROR_CASES

VALID = """\
file:
  selectors:
    - name: binMods
      operation: [createExecutable, modifyExecutable]
      targetFilePath: [/usr/bin/**]
  responses:
    - match: [binMods]
      actions: [alert, block]
"""
INVALID = """\
file:
  selectors:
    - name: binMods
      targetFilePath: [usr/bin]
  responses:
    - match: [binMods, nope]
      actions: [block]
"""
BROAD = """\
file:
  selectors:
    - {name: all, operation: [modifyFile]}
  responses:
    - {match: [all], actions: [alert, block]}
"""
CONTRACT_OPERATION = {
    "kind": "file",
    "operation": "createExecutable",
    "file": {"path": "/usr/bin/evil", "mount": "root"},
    "container": {"image": "docker.io/library/nginx:latest"},
    "orchestrator": {
        "type": "kubernetes",
        "cluster": {"id": "c-1", "name": "staging"},
        "namespace": "default",
        "resource": {"name": "nginx-pod-1", "labels": {"app": "nginx", "owner": "drohan"}},
    },
    "process": {"executable": "/bin/sh", "user": {"id": "0", "name": "root"}, "session_leader": {"executable": "/bin/bash", "interactive": True}},
}
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<path>\S+): (?P<message>.+)$")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# --- validate -----------------------------------------------------------------------------------


def test_validate_valid_text(tmp_path, capsys) -> None:
    assert run(capsys, "policy", "validate", write(tmp_path, "p.yaml", VALID)) == (0, "", "")


def test_validate_valid_json(tmp_path, capsys) -> None:
    code, out, _ = run(capsys, "policy", "validate", write(tmp_path, "p.yaml", VALID), "--format", "json")
    assert code == 0
    assert json.loads(out) == {"valid": True, "errors": [], "warnings": []}


def test_validate_invalid_text(tmp_path, capsys) -> None:
    path = write(tmp_path, "p.yaml", INVALID)
    code, out, _ = run(capsys, "policy", "validate", path)
    assert code == 1
    lines = out.splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["file"], m["line"], m["column"], m["path"]) for m in parsed] == [
        (path, "4", "24", "file.selectors[0].targetFilePath[0]"),
        (path, "6", "24", "file.responses[0].match[1]"),
        (path, "7", "17", "file.responses[0].actions[0]"),
    ]
    assert parsed[0]["message"].endswith("[bad-path-pattern]")


def test_validate_invalid_json_shape(tmp_path, capsys) -> None:
    code, out, _ = run(capsys, "policy", "validate", write(tmp_path, "p.yaml", INVALID), "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert set(doc) == {"valid", "errors", "warnings"} and doc["valid"] is False
    assert [e["code"] for e in doc["errors"]] == ["bad-path-pattern", "unknown-selector", "block-requires-alert"]
    for error in doc["errors"]:
        assert set(error) == {"path", "line", "column", "message", "code"}
        assert isinstance(error["line"], int) and isinstance(error["column"], int)
    assert doc["errors"][1] == {
        "path": "file.responses[0].match[1]",
        "line": 6,
        "column": 24,
        "message": "no selector is named 'nope' (D7)",
        "code": "unknown-selector",
    }


def test_validate_warning_keeps_exit_0(tmp_path, capsys) -> None:
    path = write(tmp_path, "p.yaml", BROAD)
    code, out, _ = run(capsys, "policy", "validate", path)
    assert code == 0
    (line,) = out.splitlines()
    match = LINE.match(line)
    assert match and match["path"] == "file.responses[0].match[0]" and "warning:" in line and line.endswith("[broad-block]")
    code, out, _ = run(capsys, "policy", "validate", path, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["valid"] is True and [w["code"] for w in doc["warnings"]] == ["broad-block"]
    assert set(doc["warnings"][0]) == {"path", "line", "column", "message", "code"}


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.id)
def test_validate_every_error_case(tmp_path, capsys, case) -> None:
    code, out, err = run(capsys, "policy", "validate", write(tmp_path, "p.yaml", case.text), "--format", "json")
    assert code == 1 and err == ""
    errors = json.loads(out)["errors"]
    assert {"code": case.code, "path": case.path, "line": case.line} in [
        {"code": e["code"], "path": e["path"], "line": e["line"]} for e in errors
    ]


def test_validate_not_yaml(tmp_path, capsys) -> None:
    code, out, _ = run(capsys, "policy", "validate", write(tmp_path, "p.yaml", "file: [\n  {a: \n"), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and [e["code"] for e in doc["errors"]] == ["yaml-syntax"]


def test_validate_binary_file(tmp_path, capsys) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"\x00\x01\xfe\xff")
    code, out, _ = run(capsys, "policy", "validate", str(path))
    assert code == 1 and out.count("\n") == 1 and "[yaml-syntax]" in out


@pytest.mark.parametrize("target", ["missing.yaml", "."])
def test_validate_unreadable_file(tmp_path, capsys, target) -> None:
    code, out, err = run(capsys, "policy", "validate", str(tmp_path / target))
    assert code == 2 and out == "" and err.startswith("d4c policy validate: cannot read") and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["policy"], ["policy", "validate"], ["policy", "validate", "x", "--format", "xml"], ["policy", "evaluate", "x"]])
def test_usage_errors(capsys, argv) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and "usage:" in err


# --- evaluate ----------------------------------------------------------------------------------


def test_evaluate_contract_example(tmp_path, capsys) -> None:
    policy = write(tmp_path, "p.yaml", VALID)
    op = write(tmp_path, "op.json", json.dumps(CONTRACT_OPERATION))
    code, out, err = run(capsys, "policy", "evaluate", policy, "--operation", op)
    assert (code, err) == (0, "")
    assert json.loads(out) == {"matched_selectors": ["binMods"], "actions": ["alert", "block"], "responses": [0]}


def test_evaluate_list(tmp_path, capsys) -> None:
    policy = write(tmp_path, "p.yaml", VALID)
    other = dict(CONTRACT_OPERATION, file={"path": "/etc/x", "mount": "root"})
    op = write(tmp_path, "ops.json", json.dumps([CONTRACT_OPERATION, other]))
    code, out, _ = run(capsys, "policy", "evaluate", policy, "--operation", op)
    assert code == 0
    assert json.loads(out) == [
        {"matched_selectors": ["binMods"], "actions": ["alert", "block"], "responses": [0]},
        {"matched_selectors": [], "actions": [], "responses": []},
    ]


def test_evaluate_stdin(tmp_path, capsys, monkeypatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(CONTRACT_OPERATION)))
    code, out, _ = run(capsys, "policy", "evaluate", write(tmp_path, "p.yaml", VALID), "--operation", "-")
    assert code == 0 and json.loads(out)["responses"] == [0]


def test_evaluate_invalid_policy(tmp_path, capsys) -> None:
    path = write(tmp_path, "p.yaml", INVALID)
    op = write(tmp_path, "op.json", json.dumps(CONTRACT_OPERATION))
    code, out, err = run(capsys, "policy", "evaluate", path, "--operation", op)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 3 and all(LINE.match(line) for line in err.splitlines())


@pytest.mark.parametrize(
    "payload,message",
    [
        ("{not json", "d4c policy evaluate: OP:1:2: invalid JSON: "),
        ('{"kind": "file", "operation": "createFile", "file": {"path": "/x", "mount": "nfs"}}', "d4c policy evaluate: OP:1:77: operation.file.mount: must be one of root, volume, file"),
        ('[{"kind": "process", "operation": "exec"}, 3]', "d4c policy evaluate: OP:1:44: operation[1]: must be an object, not a number"),
        ('"exec"', "d4c policy evaluate: OP:1:1: operation: must be an object, not a string"),
        # A missing field is located at the object that lacks it; a nested one at its value.
        ('[{"kind": "process", "operation": "exec"},\n {"kind": "file", "operation": "createFile"}]',
         "d4c policy evaluate: OP:2:2: operation[1].file: required for a file operation"),
        ('{"kind": "process", "operation": "exec",\n "process": {"user": {"id": [1]}}}',
         "d4c policy evaluate: OP:2:29: operation.process.user.id: must be a string or an integer"),
    ],
)
def test_evaluate_malformed_operation(tmp_path, capsys, payload, message) -> None:
    op = write(tmp_path, "op.json", payload)
    code, out, err = run(capsys, "policy", "evaluate", write(tmp_path, "p.yaml", VALID), "--operation", op)
    assert code == 2 and out == ""
    assert err.replace(op, "OP").startswith(message) and err.count("\n") == 1


def test_evaluate_missing_files(tmp_path, capsys) -> None:
    policy = write(tmp_path, "p.yaml", VALID)
    code, _, err = run(capsys, "policy", "evaluate", policy, "--operation", str(tmp_path / "none.json"))
    assert code == 2 and "cannot read" in err
    code, _, err = run(capsys, "policy", "evaluate", str(tmp_path / "none.yaml"), "--operation", "-")
    assert code == 2 and "cannot read" in err


def test_console_script_never_prints_a_traceback(tmp_path) -> None:
    """Through the installed entry point, in a fresh process: bad input is one line, no traceback."""
    bad_yaml = write(tmp_path, "bad.yaml", "file: [\n")
    bad_op = write(tmp_path, "op.json", "[1, 2")
    policy = write(tmp_path, "p.yaml", VALID)
    for argv, expected in [
        (["policy", "validate", bad_yaml], 1),
        (["policy", "validate", str(tmp_path / "nope.yaml")], 2),
        (["policy", "evaluate", policy, "--operation", bad_op], 2),
        (["policy", "evaluate", bad_yaml, "--operation", bad_op], 1),
    ]:
        # Exactly what the `d4c` console script runs.
        script = "import sys; from d4c.cli import main; sys.exit(main())"
        proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, check=False)
        assert proc.returncode == expected, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout
