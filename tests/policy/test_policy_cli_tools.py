"""`d4c --version`, `policy validate` of several files and stdin, `policy schema`, `policy explain`,
and the typographic-quote warning (docs/cli.md)."""

from __future__ import annotations

import io
import json

from d4c.cli import main
from reference_agent.policy.loader import load_policy_text
from reference_agent.policy.matcher import evaluate
from reference_agent.policy.operation import parse_operation

POLICY = """\
file:
  selectors:
    - name: binMods
      operation: [createExecutable, modifyExecutable]
      targetFilePath: [/usr/bin/**]
    - name: nginx
      containerImageName: [nginx]
    - name: prod
      orchestratorResourceLabel: [\u2018production:*\u2019]
  responses:
    - match: [binMods]
      exclude: [nginx]
      actions: [alert, block]
    - match: [binMods]
      actions: [log]
"""
OP = {"kind": "file", "operation": "createExecutable", "file": {"path": "/usr/bin/evil", "mount": "root"},
      "container": {"image": "nginx:latest"}}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert capsys.readouterr().out.startswith("d4c 0.")


def test_typographic_quotes_warn_and_the_value_never_matches():
    result = load_policy_text(POLICY)
    assert result.valid
    [warning] = result.warnings
    assert warning.code == "typographic-quote" and warning.path == "file.selectors[2].orchestratorResourceLabel[0]"
    assert warning.line == 9
    pod = dict(OP, orchestrator={"type": "kubernetes", "resource": {"name": "p", "labels": {"production": "yes"}}})
    verdict = evaluate(result.policy, parse_operation(pod))
    assert "prod" not in verdict.matched_selectors


def test_validate_several_files_and_stdin(tmp_path, capsys, monkeypatch):
    good = write(tmp_path, "good.yaml", POLICY)
    bad = write(tmp_path, "bad.yaml", "file:\n  selectors: []\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(POLICY))
    assert main(["policy", "validate", str(good), "-"]) == 0
    out = capsys.readouterr().out
    assert f"{good}:9:" in out and "<stdin>:9:" in out
    assert main(["policy", "validate", str(good), str(bad)]) == 1
    assert main(["policy", "validate", str(good), str(tmp_path / "missing.yaml"), str(bad)]) == 2
    capsys.readouterr()
    assert main(["policy", "validate", "--format", "json", str(good), str(bad)]) == 1
    reports = json.loads(capsys.readouterr().out)
    assert [(r["file"], r["valid"]) for r in reports] == [(str(good), True), (str(bad), False)]


def test_schema_and_its_path(capsys):
    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert main(["policy", "schema", "--path"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("policy.schema.json") and json.loads(open(path).read()) == schema


def test_explain_agrees_with_evaluate(tmp_path, capsys):
    policy = write(tmp_path, "p.yaml", POLICY)
    op = write(tmp_path, "op.json", json.dumps(OP))
    assert main(["policy", "explain", str(policy), "--operation", str(op), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == {"matched_selectors": ["binMods"], "actions": ["log"], "responses": [1]}
    selectors = {s["name"]: s for s in report["selectors"]}
    assert selectors["binMods"]["matched"] and all(c["matched"] for c in selectors["binMods"]["conditions"])
    assert [(c["condition"], c["matched"]) for c in selectors["prod"]["conditions"]] == [("orchestratorResourceLabel", False)]
    assert [(r["state"], r["excluded_by"]) for r in report["responses"]] == [("excluded", ["nginx"]), ("fired", [])]
    assert main(["policy", "explain", str(policy), "--operation", str(op)]) == 0
    text = capsys.readouterr().out
    assert "file.responses[0]: excluded by ['nginx']" in text and "FAIL orchestratorResourceLabel" in text


def test_explain_names_the_failing_condition_of_a_near_miss(tmp_path, capsys):
    policy = write(tmp_path, "p.yaml", POLICY)
    near = dict(OP, operation="createFile", container={"image": "redis:7"})
    op = write(tmp_path, "op.json", json.dumps([near]))
    assert main(["policy", "explain", str(policy), "--operation", str(op), "--format", "json"]) == 0
    [report] = json.loads(capsys.readouterr().out)
    bin_mods = report["selectors"][0]
    assert [(c["condition"], c["matched"]) for c in bin_mods["conditions"]] == [("operation", False), ("targetFilePath", True)]
    assert report["verdict"]["actions"] == [] and {r["state"] for r in report["responses"]} == {"not matched"}
    assert main(["policy", "explain", str(policy), "--operation", str(tmp_path / "none.json")]) == 2


def test_a_top_level_version_is_accepted_and_changes_no_verdict_d32():
    plain = load_policy_text(POLICY)
    versioned = load_policy_text('version: "1"\n' + POLICY)
    assert versioned.valid and versioned.policy.version == "1" and plain.policy.version is None
    assert versioned.policy == plain.policy
    op = parse_operation(OP)
    assert evaluate(versioned.policy, op) == evaluate(plain.policy, op)
    for bad in ("version: 1\n", "version: ''\n", "version: [a]\n"):
        result = load_policy_text(bad + POLICY)
        assert [(e.code, e.path, e.line) for e in result.errors] == [("bad-type", "version", 1)]
    only = load_policy_text('version: "1"\n')
    assert [e.code for e in only.errors] == ["empty-policy"]


def test_the_schema_agrees_on_version():
    import jsonschema
    import yaml

    from reference_agent.policy.schema import policy_schema

    validator = jsonschema.Draft202012Validator(policy_schema())
    assert validator.is_valid(yaml.safe_load('version: "1"\n' + POLICY.replace("\u2018", "'").replace("\u2019", "'")))
    assert not validator.is_valid({"version": "1"})
    assert not validator.is_valid(yaml.safe_load("version: 1\n" + POLICY))
