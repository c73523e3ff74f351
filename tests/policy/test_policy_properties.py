"""Properties: the validator never raises, only returns structured errors; evaluation is
deterministic, independent of the order of list values, and agrees with D22 read literally."""

from __future__ import annotations

import random

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_agent.policy import (
    Policy,
    Verdict,
    evaluate,
    load_policy_text,
    parse_operation,
    selector_matches,
    validate_policy_document,
)

from .strategies import documents, operations, valid_policies
from .test_policy_validator import ALL_CODES

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_result(result, with_lines: bool) -> None:
    assert result.valid == (not result.errors)
    assert (result.policy is not None) == result.valid
    for d in result.errors:
        assert d.code in ALL_CODES, d
        assert isinstance(d.path, str) and isinstance(d.message, str) and d.message and "\n" not in d.message
        if with_lines:
            assert isinstance(d.line, int) and d.line >= 1 and isinstance(d.column, int) and d.column >= 1
    for w in result.warnings:
        assert w.code == "broad-block"


@SETTINGS
@given(st.text(max_size=200))
def test_validator_never_raises_on_any_text(text: str) -> None:
    _check_result(load_policy_text(text), with_lines=True)


@SETTINGS
@given(documents)
def test_validator_never_raises_on_any_yaml_document(doc) -> None:
    _check_result(load_policy_text(yaml.safe_dump(doc, allow_unicode=True)), with_lines=True)


@SETTINGS
@given(documents)
def test_validator_never_raises_on_any_mapping(doc) -> None:
    _check_result(validate_policy_document(doc), with_lines=False)


@SETTINGS
@given(st.dictionaries(st.sampled_from(["file", "process"]), documents, min_size=1))
def test_validator_never_raises_on_policy_shaped_mappings(doc) -> None:
    _check_result(validate_policy_document(doc), with_lines=False)
    _check_result(load_policy_text(yaml.safe_dump(doc)), with_lines=True)


@SETTINGS
@given(valid_policies())
def test_generated_policies_are_valid_from_yaml_and_from_mappings(doc) -> None:
    result = validate_policy_document(doc)
    assert result.valid, result.errors
    assert load_policy_text(yaml.safe_dump(doc)).policy == result.policy


def _by_definition(policy: Policy, op) -> Verdict:
    """D22 read literally, with selector_matches as the only building block."""
    section = policy.section(op.kind)
    if section is None:
        return Verdict()
    matched = {s.name for s in section.selectors if selector_matches(s, op)}
    fired = [r for r in section.responses if any(n in matched for n in r.match) and not any(n in matched for n in r.exclude)]
    shown = {n for r in fired for n in r.match if n in matched}
    return Verdict(
        matched_selectors=tuple(s.name for s in section.selectors if s.name in shown),
        actions=tuple(sorted({a for r in fired for a in r.actions})),
        responses=tuple(r.index for r in fired),
    )


def _shuffled(doc: dict, rng: random.Random) -> dict:
    """The same policy with every list VALUE reordered (selector and response order kept)."""
    out: dict = {}
    for kind, section in doc.items():
        selectors = []
        for selector in section["selectors"]:
            selectors.append({k: (rng.sample(v, len(v)) if isinstance(v, list) else v) for k, v in selector.items()})
        responses = [{k: rng.sample(v, len(v)) for k, v in r.items()} for r in section["responses"]]
        out[kind] = {"selectors": selectors, "responses": responses}
    return out


@SETTINGS
@given(valid_policies(), st.lists(operations(), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_evaluate_is_deterministic_order_independent_and_follows_d22(doc, ops, rng) -> None:
    policy = validate_policy_document(doc).policy
    shuffled = validate_policy_document(_shuffled(doc, rng)).policy
    for raw in ops:
        op = parse_operation(raw)
        verdict = evaluate(policy, op)
        assert verdict == evaluate(policy, op) == evaluate(policy, parse_operation(raw))
        assert verdict == evaluate(shuffled, op)
        assert verdict == _by_definition(policy, op)
        assert list(verdict.actions) == sorted(set(verdict.actions))
        assert list(verdict.responses) == sorted(set(verdict.responses))


YAML_PIECES = [
    "file:", "process:", "  selectors:", "  responses:", "    - name: a", "    - name: &n a", "      targetFilePath: [/x]",
    "      operation: *n", "    - match: [a]", "      actions: [log, block]", "    - {match: [a], actions: [alert]}",
    "  <<: *n", "? [a, b]", ": c", "---", "...", "%YAML 1.1", "!!binary x", "!!int abc", "!!timestamp 2023-99-99",
    "!!python/object:os.system x", "key: !custom v", "a: &r [*r]", "\t- x", "{", "[", "'", '"\\x"', "- - -", "~", "",
    "      processUserId: [0x1F, 1_000, -0]", "      ignoreVolumeMounts: yes", "      orchestratorResourceLabel: [a:b, 'c:']",
]


@SETTINGS
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=12))
def test_validator_never_raises_on_yaml_like_text(pieces: list[str]) -> None:
    _check_result(load_policy_text("\n".join(pieces) + "\n"), with_lines=True)
