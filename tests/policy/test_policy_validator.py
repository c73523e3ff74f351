"""Table-driven tests of the validator: every rule, every error code, with the expected line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from reference_agent.policy import (
    Diagnostic,
    load_policy_text,
    validate_policy_document,
    validate_policy_node,
)

from .cases import ERROR_CASES, NO_WARNING_CASES, VALID_CASES, WARNING_CASES, ErrorCase

CONTRACT = Path(__file__).resolve().parents[2] / ".." / "shared" / "spec" / "cli-contract.md"
ALL_CODES = {
    "yaml-syntax", "empty-policy", "unknown-key", "missing-field", "bad-type", "empty-list",
    "bad-name", "duplicate-name", "no-condition", "condition-not-allowed", "unknown-operation",
    "unknown-action", "bad-path-pattern", "wildcard-not-allowed", "bad-label",
    "bad-orchestrator-type", "exclusive-conditions", "unknown-selector", "cross-section-selector",
    "block-requires-alert", "too-many", "too-long",
}


def _describe(errors: tuple[Diagnostic, ...]) -> str:
    return "\n".join(f"  {e.line}:{e.column} {e.path} [{e.code}] {e.message}" for e in errors)


@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda c: c.id)
def test_error_case(case: ErrorCase) -> None:
    result = load_policy_text(case.text)
    assert not result.valid and result.policy is None
    hits = [e for e in result.errors if e.code == case.code and e.path == case.path]
    assert hits, f"no {case.code} at {case.path}; got:\n{_describe(result.errors)}"
    assert case.line in [e.line for e in hits], f"expected line {case.line}; got:\n{_describe(result.errors)}"
    for error in result.errors:
        assert error.line is not None and error.line >= 1 and error.column is not None and error.column >= 1
        assert "\n" not in error.message


def test_every_contract_code_has_a_case() -> None:
    assert {c.code for c in ERROR_CASES} == ALL_CODES


def test_the_code_list_is_the_contracts() -> None:
    if not CONTRACT.exists():
        pytest.skip("cli-contract.md is not available on this machine")
    text = CONTRACT.read_text()
    listed = set(re.findall(r"`([a-z]+(?:-[a-z]+)+)`", text.split("one of:", 1)[1].split("Warnings", 1)[0]))
    assert listed == ALL_CODES


@pytest.mark.parametrize("decision", [f"D{i}" for i in range(1, 10)] + ["D26"])
def test_every_policy_decision_has_a_failing_example(decision: str) -> None:
    assert any(decision in c.decisions for c in ERROR_CASES), decision


@pytest.mark.parametrize("case", VALID_CASES, ids=lambda c: c.id)
def test_valid_case(case) -> None:
    result = load_policy_text(case.text)
    assert result.valid, _describe(result.errors)
    assert result.policy is not None


@pytest.mark.parametrize("case_id,path,text", WARNING_CASES, ids=[c[0] for c in WARNING_CASES])
def test_broad_block_warning(case_id: str, path: str, text: str) -> None:
    result = load_policy_text(text)
    assert result.valid, _describe(result.errors)
    assert [(w.code, w.path) for w in result.warnings] == [("broad-block", path)]
    assert result.warnings[0].line is not None


@pytest.mark.parametrize("case_id,text", NO_WARNING_CASES, ids=[c[0] for c in NO_WARNING_CASES])
def test_no_broad_block_warning(case_id: str, text: str) -> None:
    result = load_policy_text(text)
    assert result.valid and result.warnings == ()


def test_aliases_are_normalised() -> None:
    result = load_policy_text(next(c for c in VALID_CASES if c.id == "aliases").text)
    selector = result.policy.file.selectors[0]
    assert selector.orchestratorClusterId == ("c-1",)
    assert selector.orchestratorClusterName == ("staging",)
    assert selector.orchestratorNamespace == ("prod-*",)
    assert selector.orchestratorResourceName == ("web-*",)
    assert selector.orchestratorResourceLabel == ("app.kubernetes.io/name:web", "tier:")
    assert selector.labels == (("app.kubernetes.io/name", "web"), ("tier", ""))
    assert selector.fullContainerImageName == ("docker.io/library/nginx:*",)
    assert selector.ignoreVolumeFiles is False
    assert set(selector.conditions) == {
        "orchestratorClusterId", "orchestratorClusterName", "orchestratorNamespace",
        "orchestratorResourceName", "orchestratorResourceLabel", "fullContainerImageName",
        "ignoreVolumeFiles",
    }


def test_model_of_the_seed_policy() -> None:
    policy = load_policy_text(VALID_CASES[0].text).policy
    file, process = policy.file, policy.process
    assert file.kind == "file" and process.kind == "process"
    assert file.selectors[0].name == "exampleFile"
    assert file.selectors[0].operations == frozenset({"createFile", "modifyFile"})
    assert file.selectors[0].index == 0 and file.selectors[0].line == 3
    assert file.responses[0].match == ("exampleFile",) and file.responses[0].exclude == ()
    assert file.responses[0].actions == frozenset({"block", "alert"})
    assert process.responses[0].index == 0 and process.responses[0].line == 13


def test_user_ids_become_strings() -> None:
    text = next(c for c in VALID_CASES if c.id == "every-process-condition").text
    assert load_policy_text(text).policy.process.selectors[0].processUserId == ("0", "1000")


def test_selector_without_operation_has_all_operations() -> None:
    text = next(c for c in VALID_CASES if c.id == "seed-path-example").text
    assert load_policy_text(text).policy.file.selectors[0].operations == frozenset()


def test_errors_come_in_document_order_and_all_are_reported() -> None:
    text = (
        "file:\n"
        "  selectors:\n"
        "    - name: a\n"
        "      targetFilePath: [relative]\n"
        "      processName: [sh]\n"
        "  responses:\n"
        "    - {match: [zz], actions: [block]}\n"
        "bogus: 1\n"
    )
    result = load_policy_text(text)
    assert [(e.line, e.code) for e in result.errors] == [
        (4, "bad-path-pattern"),
        (5, "condition-not-allowed"),
        (7, "unknown-selector"),
        (7, "block-requires-alert"),
        (8, "unknown-key"),
    ]


def test_columns_point_at_the_value() -> None:
    text = "file:\n  selectors:\n    - {name: a, targetFilePath: [/ok, rel]}\n  responses:\n    - {match: [a], actions: [log]}\n"
    (error,) = load_policy_text(text).errors
    assert (error.line, error.column) == (3, 39)


def test_document_form_has_paths_but_no_lines() -> None:
    result = validate_policy_document(
        {"file": {"selectors": [{"name": "a", "targetFilePath": ["rel"]}], "responses": [{"match": ["a"], "actions": ["log"]}]}}
    )
    (error,) = result.errors
    assert (error.path, error.line, error.column, error.code) == ("file.selectors[0].targetFilePath[0]", None, None, "bad-path-pattern")


def test_document_form_accepts_a_valid_policy() -> None:
    result = validate_policy_document(
        {"process": {"selectors": [{"name": "p", "processUserId": [0]}], "responses": [{"match": ["p"], "actions": ["log"]}]}}
    )
    assert result.valid and result.policy.process.selectors[0].processUserId == ("0",)


def test_embedded_node_reports_lines_of_the_enclosing_file_and_the_prefix() -> None:
    scenario = (
        "id: x\n"
        "title: y\n"
        "policy:\n"
        "  file:\n"
        "    selectors:\n"
        "      - {name: a, targetFilePath: [rel]}\n"
        "    responses:\n"
        "      - {match: [a], actions: [log]}\n"
    )
    root = yaml.compose(scenario, Loader=yaml.SafeLoader)
    policy_node = next(v for k, v in root.value if k.value == "policy")
    (error,) = validate_policy_node(policy_node, "policy").errors
    assert (error.path, error.line, error.code) == ("policy.file.selectors[0].targetFilePath[0]", 6, "bad-path-pattern")
    ok = scenario.replace("[rel]", "[/etc/**]")
    root = yaml.compose(ok, Loader=yaml.SafeLoader)
    assert validate_policy_node(next(v for k, v in root.value if k.value == "policy"), "policy").valid


def test_diagnostic_json_shape() -> None:
    result = load_policy_text("file: 1\n")
    assert result.to_json() == {
        "valid": False,
        "errors": [{"path": "file", "line": 1, "column": 7, "message": result.errors[0].message, "code": "bad-type"}],
        "warnings": [],
    }


def test_recursive_alias_is_an_error_not_a_crash() -> None:
    result = load_policy_text("file: &a\n  selectors: [*a]\n  responses: []\n")
    assert not result.valid


def test_non_utf8_file(tmp_path) -> None:
    from reference_agent.policy import load_policy_file

    path = tmp_path / "p.yaml"
    path.write_bytes(b"file:\n  selectors: [\xff]\n")
    (error,) = load_policy_file(path).errors
    assert (error.code, error.line) == ("yaml-syntax", 2)


def test_unreadable_file_raises_policy_file_error(tmp_path) -> None:
    from reference_agent.policy import PolicyFileError, load_policy_file

    with pytest.raises(PolicyFileError):
        load_policy_file(tmp_path / "missing.yaml")
    with pytest.raises(PolicyFileError):
        load_policy_file(tmp_path)


def test_the_seed_typographic_quotes_are_part_of_the_values() -> None:
    """spec.md, Notes on the seed: `‘ ’` are not YAML quotes."""
    text = next(c for c in VALID_CASES if c.id == "seed-selector-example-verbatim-quotes").text
    selector = load_policy_text(text).policy.file.selectors[0]
    assert selector.labels == (("‘production", "*’"),)
    assert selector.orchestratorResourceName == ("‘nginx-pod-*’",)


def test_unprintable_character_is_located() -> None:
    (error,) = load_policy_text("file:\n  selectors: a\x07b\n").errors
    assert (error.code, error.line, error.column) == ("yaml-syntax", 2, 15)
